// The keyed_count example's job in Apache Flink (issue 11's comparison), for benches/flink.sh:
// numbers 0..N-1 from a parallel sequence source, keyed by n % K, a running count per key in a
// ValueState, (key, count) to a discarding sink. Parallelism, state backend (hashmap or rocksdb)
// and checkpoint interval as given; RocksDB checkpoints are incremental, as rill's are.
//
// java -cp 'LIB/*:CLASSES' KeyedCount RECORDS KEYS PARALLELISM hashmap|rocksdb INTERVAL_MS DIR
//
// Prints records_per_sec over the job's net runtime (submission to finish, without starting the
// local cluster), like keyed_count's summary line.

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

public class KeyedCount {
    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            throw new IllegalArgumentException("usage: KeyedCount RECORDS KEYS PARALLELISM hashmap|rocksdb INTERVAL_MS DIR");
        }
        long records = Long.parseLong(args[0]);
        long keys = Long.parseLong(args[1]);
        int parallelism = Integer.parseInt(args[2]);
        String backend = args[3];
        long intervalMs = Long.parseLong(args[4]);
        String dir = args[5];

        Configuration conf = new Configuration();
        conf.setString("state.backend.type", backend);
        conf.setString("execution.checkpointing.incremental", "true");
        conf.setString("execution.checkpointing.dir", "file://" + dir + "/checkpoints");
        if (intervalMs > 0) {
            conf.setString("execution.checkpointing.interval", intervalMs + " ms");
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(parallelism);
        env.fromSequence(0, records - 1)
                .keyBy(new ByKey(keys))
                .process(new Count())
                .sinkTo(new DiscardingSink<>());
        JobExecutionResult result = env.execute("keyed-count");
        long ms = result.getNetRuntime();
        System.out.printf("records=%d keys=%d parallelism=%d backend=%s elapsed_ms=%d records_per_sec=%.0f%n",
                records, keys, parallelism, backend, ms, records / Math.max(ms / 1000.0, 1e-9));
    }

    /** The running count of each key, emitted after every record (rill's RunningCount). */
    static class Count extends KeyedProcessFunction<Long, Long, Tuple2<Long, Long>> {
        private transient ValueState<Long> count;

        @Override
        public void open(OpenContext context) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Long.class));
        }

        @Override
        public void processElement(Long n, Context ctx, Collector<Tuple2<Long, Long>> out) throws Exception {
            Long c = count.value();
            long next = (c == null ? 0 : c) + 1;
            count.update(next);
            out.collect(Tuple2.of(ctx.getCurrentKey(), next));
        }
    }
}
