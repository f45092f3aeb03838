# Helpers the comparison scripts (all_cached.sh, flink.sh) source.

# The records/s of a summary line (`records_per_sec=N`) on stdin.
rate() { sed -n 's/.*records_per_sec=\([0-9]*\).*/\1/p'; }

# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# pair PREFIX A B: appends A to PREFIX.a, B to PREFIX.b and A/B to PREFIX.ratio (one pair of a
# series run in turn; report each file with median).
pair() {
    echo "$2" >>"$1.a"
    echo "$3" >>"$1.b"
    awk -v a="$2" -v b="$3" 'BEGIN { printf "%.4f\n", a / b }' >>"$1.ratio"
}
