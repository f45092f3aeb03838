// The window_count example's job in Apache Flink (issue 11's comparison), for benches/flink.sh:
// numbers 0..N-1, event time max(0, i - (i * 7919) mod O) ms with watermarks O ms behind (every
// 5 ms), key i % K, a count per key in tumbling event-time windows of W ms, lines
// "key<TAB>window start<TAB>count" to an exactly-once file sink. Heap state, parallelism and
// checkpoint interval as given.
//
// java -cp 'LIB/*:CLASSES' WindowCount RECORDS KEYS PARALLELISM WINDOW_MS OUT_OF_ORDERNESS_MS INTERVAL_MS DIR
//
// As rill's ordered generator does, each source subtask emits its numbers in increasing order,
// interleaved with the other subtasks' (subtask s: s, s+P, s+2P, ...), so event time advances
// together everywhere: Flink's sequence source reads one contiguous range per subtask, and a map
// chained to it turns the j-th number of range s into s + P * j (RECORDS must be a multiple of P).
// Prints records_per_sec over the job's net runtime (without starting the local cluster).

import java.time.Duration;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.serialization.SimpleStringEncoder;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.sink.FileSink;
import org.apache.flink.core.fs.Path;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

public class WindowCount {
    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            throw new IllegalArgumentException(
                    "usage: WindowCount RECORDS KEYS PARALLELISM WINDOW_MS OUT_OF_ORDERNESS_MS INTERVAL_MS DIR");
        }
        long records = Long.parseLong(args[0]);
        long keys = Long.parseLong(args[1]);
        int parallelism = Integer.parseInt(args[2]);
        long windowMs = Long.parseLong(args[3]);
        long o = Long.parseLong(args[4]);
        long intervalMs = Long.parseLong(args[5]);
        String dir = args[6];
        if (records % parallelism != 0) {
            throw new IllegalArgumentException("RECORDS must be a multiple of PARALLELISM");
        }

        Configuration conf = new Configuration();
        conf.setString("state.backend.type", "hashmap");
        conf.setString("execution.checkpointing.dir", "file://" + dir + "/checkpoints");
        conf.setString("execution.checkpointing.interval", intervalMs + " ms");
        conf.setString("pipeline.auto-watermark-interval", "5 ms");
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(parallelism);
        env.fromSequence(0, records - 1)
                .map(new Interleave(records / parallelism, parallelism))
                .assignTimestampsAndWatermarks(WatermarkStrategy.<Long>forBoundedOutOfOrderness(Duration.ofMillis(o))
                        .withTimestampAssigner((i, previous) -> eventTime(i, o)))
                .keyBy(new ByKey(keys))
                .window(TumblingEventTimeWindows.of(Duration.ofMillis(windowMs)))
                .aggregate(new Count(), new Line())
                .sinkTo(FileSink.forRowFormat(new Path("file://" + dir + "/output"), new SimpleStringEncoder<String>())
                        .build());
        JobExecutionResult result = env.execute("window-count");
        long ms = result.getNetRuntime();
        System.out.printf("records=%d keys=%d parallelism=%d window_ms=%d elapsed_ms=%d records_per_sec=%.0f%n",
                records, keys, parallelism, windowMs, ms, records / Math.max(ms / 1000.0, 1e-9));
    }

    /** window_count's event time: max(0, i - (i * 7919) mod o). */
    static long eventTime(long i, long o) {
        if (o == 0) {
            return i;
        }
        return Math.max(0, i - Math.floorMod(i * 7919, o));
    }

    /** The j-th number of contiguous range s (of `perRange`) becomes s + P * j. */
    static class Interleave implements MapFunction<Long, Long> {
        private final long perRange;
        private final int parallelism;

        Interleave(long perRange, int parallelism) {
            this.perRange = perRange;
            this.parallelism = parallelism;
        }

        @Override
        public Long map(Long n) {
            return n / perRange + parallelism * (n % perRange);
        }
    }

    static class Count implements AggregateFunction<Long, Long, Long> {
        @Override
        public Long createAccumulator() {
            return 0L;
        }

        @Override
        public Long add(Long value, Long accumulator) {
            return accumulator + 1;
        }

        @Override
        public Long getResult(Long accumulator) {
            return accumulator;
        }

        @Override
        public Long merge(Long a, Long b) {
            return a + b;
        }
    }

    static class Line extends ProcessWindowFunction<Long, String, Long, TimeWindow> {
        @Override
        public void process(Long key, Context context, Iterable<Long> counts, Collector<String> out) {
            out.collect(key + "\t" + context.window().getStart() + "\t" + counts.iterator().next());
        }
    }
}
