// The key of benches/flink's jobs: n % K, as keyed_count's uniform keys and window_count's keys.

import org.apache.flink.api.java.functions.KeySelector;

public class ByKey implements KeySelector<Long, Long> {
    private final long keys;

    public ByKey(long keys) {
        this.keys = keys;
    }

    @Override
    public Long getKey(Long n) {
        return n % keys;
    }
}
