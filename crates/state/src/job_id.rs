//! The identity of a job: the checkpoint location it keeps, with a random part chosen by the
//! first run there. Every later run and every process on that location reads the same id;
//! another job (another location, or the same path on another machine's disk) gets another.
//! What a job owns outside its checkpoints (an output prefix) is marked with it.

/// Name of the object (or file, in a local checkpoint directory) holding the job's id, at the
/// checkpoint location's root.
pub const JOB_ID_FILE: &str = "_job";

/// A new job id for a job checkpointing at `location`: `<16 hex digits>@<location>`.
pub(crate) fn new_job_id(location: &str) -> String {
    format!("{:016x}@{location}", fastrand::u64(..))
}

/// A stored job id, or `None` if the stored bytes hold none.
pub(crate) fn parse_job_id(bytes: &[u8]) -> Option<String> {
    let id = String::from_utf8_lossy(bytes).trim().to_string();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_new_ids_for_one_location_differ_and_both_name_it() {
        let (a, b) = (new_job_id("s3://bucket/job"), new_job_id("s3://bucket/job"));
        assert_ne!(a, b);
        assert!(a.ends_with("@s3://bucket/job"), "{a}");
        assert_eq!(parse_job_id(format!("{a}\n").as_bytes()), Some(a));
        assert_eq!(parse_job_id(b" \n"), None);
    }
}
