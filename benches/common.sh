# Helpers the comparison scripts (all_cached.sh, flink.sh, nexmark.sh) source.

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

# ensure_flink SCRIPT: Java 17's javac (from Debian's openjdk-17-jdk-headless if missing) and
# Flink 2.3.0's jars (PyPI's apache-flink-libraries, PyFlink's copy of Flink's lib/) in
# $FLINK/lib; sets FLINK (.bench/flink below the project) and FLINK_VERSION.
ensure_flink() {
    FLINK_VERSION=2.3.0
    FLINK="$ROOT/.bench/flink"
    if ! command -v javac >/dev/null; then
        echo "$1: apt-get install -y openjdk-17-jdk-headless" >&2
        if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jdk-headless >&2
    fi
    if [ ! -f "$FLINK/lib/flink-dist-$FLINK_VERSION.jar" ]; then
        echo "$1: pip download apache-flink-libraries==$FLINK_VERSION into .bench/flink" >&2
        rm -rf "$FLINK" && mkdir -p "$FLINK/wheel"
        python3 -m pip download --quiet --disable-pip-version-check --no-deps \
            "apache-flink-libraries==$FLINK_VERSION" -d "$FLINK/wheel" >&2
        python3 -m zipfile -e "$FLINK"/wheel/apache_flink_libraries-*.whl "$FLINK/wheel/x"
        mv "$FLINK/wheel/x/pyflink/lib" "$FLINK/lib"
        rm -rf "$FLINK/wheel"
    fi
}
