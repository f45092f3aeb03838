//! Events read from JSON-lines files, one event per line as the `nexmark` crate's own binary
//! writes them (`{"Bid": {...}}`, snake_case fields, times in epoch milliseconds). Each file is
//! one split, kept in its order; a subtask reads its files in turn, a few lines from each, so its
//! event time stays close to each file's. The position of a file is the byte offset after the
//! last line emitted.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;

use nexmark::event::Event;
use rill::prelude::*;
use rill::serde::{Deserialize, Serialize};

/// Lines read from one file per poll before the next file's turn.
const LINES_PER_TURN: usize = 256;

/// The files of a run, divided among the source subtasks (file i to subtask i mod parallelism).
#[derive(Clone)]
pub(crate) struct JsonLinesSource {
    files: Vec<PathBuf>,
}

impl JsonLinesSource {
    pub(crate) fn new(files: Vec<PathBuf>) -> Self {
        JsonLinesSource { files }
    }
}

/// Where one file stands: the byte offset after the last line emitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(crate = "rill::serde")]
pub(crate) struct FilePosition {
    file: usize,
    offset: u64,
}

/// One open file of a subtask.
struct OpenFile {
    path: PathBuf,
    position: FilePosition,
    reader: Option<BufReader<File>>,
}

/// The running source of one subtask.
pub(crate) struct JsonLinesReader {
    files: Vec<OpenFile>,
    turn: usize,
    line: String,
}

impl SourceFactory<Event> for JsonLinesSource {
    type Source = JsonLinesReader;

    fn open(&self, ctx: &mut OpenContext<'_>, restored: Vec<FilePosition>) -> OperatorResult<JsonLinesReader> {
        let (subtask, parallelism) = (ctx.info().subtask, ctx.info().parallelism);
        let positions: Vec<FilePosition> = match restored.is_empty() {
            true => (0..self.files.len()).map(|file| FilePosition { file, offset: 0 }).collect(),
            false => restored,
        };
        let mut files = Vec::new();
        for position in positions.into_iter().filter(|p| p.file % parallelism == subtask) {
            let Some(path) = self.files.get(position.file) else {
                return Err(fatal(format!(
                    "the checkpoint names input file {} but only {} --input files are given",
                    position.file + 1,
                    self.files.len()
                )));
            };
            let mut reader = BufReader::new(File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?);
            reader.seek(SeekFrom::Start(position.offset)).map_err(|e| format!("seek {}: {e}", path.display()))?;
            files.push(OpenFile { path: path.clone(), position, reader: Some(reader) });
        }
        Ok(JsonLinesReader { files, turn: 0, line: String::new() })
    }
}

impl Source<Event> for JsonLinesReader {
    type Position = FilePosition;

    fn poll(&mut self, _ctx: &mut OperatorContext<'_>, out: &mut Collector<Event>) -> OperatorResult<SourcePoll> {
        if self.files.iter().all(|f| f.reader.is_none()) {
            return Ok(SourcePoll::Finished);
        }
        self.turn = (self.turn + 1) % self.files.len();
        let file = &mut self.files[self.turn];
        let Some(reader) = file.reader.as_mut() else { return Ok(SourcePoll::Ready) };
        for _ in 0..LINES_PER_TURN {
            self.line.clear();
            let read = reader.read_line(&mut self.line).map_err(|e| format!("read {}: {e}", file.path.display()))?;
            if read == 0 {
                file.reader = None;
                break;
            }
            let text = self.line.trim_end();
            if !text.is_empty() {
                let event: Event = serde_json::from_str(text).map_err(|e| {
                    fatal(format!("{} at byte {}: not a Nexmark event: {e}", file.path.display(), file.position.offset))
                })?;
                out.emit(event);
            }
            file.position.offset += read as u64;
        }
        Ok(SourcePoll::Ready)
    }

    fn on_barrier(&mut self, _barrier: Barrier, _ctx: &mut OperatorContext<'_>) -> OperatorResult<Vec<FilePosition>> {
        Ok(self.files.iter().map(|f| f.position.clone()).collect())
    }
}
