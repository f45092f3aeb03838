// The Nexmark queries q0-q5, q7-q9 as Flink SQL (the official texts of github.com/nexmark/nexmark,
// nexmark-flink/src/main/resources/queries/q*.sql, commit 6b3646c), for a comparison with rill's.
// Input: a directory of JSON-lines files from the nexmark crate's generator (`nexmark --no-wait
// -n N`), lines {"Person":{...}}, {"Auction":{...}} or {"Bid":{...}} with snake_case fields and
// times in epoch milliseconds, read by the filesystem connector (one file per source subtask, each
// in event-time order). A table over them stands for the official ddl_kafka.sql (its event_type
// becomes "which of the three rows is set"), views person, auction and bid give the official
// column names (ddl_views.sql), and the query inserts into the official blackhole sink.
// Streaming mode, heap state, exactly-once checkpoints every INTERVAL_MS into DIR.
//
// java -cp 'LIB/*:CLASSES' NexmarkSql QUERY INPUT_DIR PARALLELISM INTERVAL_MS DIR
//
// Prints events (the input's line count, counted before the job) and events_per_sec over the
// job's net runtime (submission to finish, without starting the local cluster).

import java.io.BufferedReader;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.Map;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;

public class NexmarkSql {
    /** The events: ddl_kafka.sql over the generator's JSON (times as epoch ms, read in UTC). */
    static final String SOURCE = """
            CREATE TABLE nexmark (
                Person ROW<
                    id  BIGINT,
                    name  VARCHAR,
                    email_address  VARCHAR,
                    credit_card  VARCHAR,
                    city  VARCHAR,
                    state  VARCHAR,
                    date_time  BIGINT,
                    extra  VARCHAR>,
                Auction ROW<
                    id  BIGINT,
                    item_name  VARCHAR,
                    description  VARCHAR,
                    initial_bid  BIGINT,
                    reserve  BIGINT,
                    date_time  BIGINT,
                    expires  BIGINT,
                    seller  BIGINT,
                    category  BIGINT,
                    extra  VARCHAR>,
                Bid ROW<
                    auction  BIGINT,
                    bidder  BIGINT,
                    price  BIGINT,
                    channel  VARCHAR,
                    url  VARCHAR,
                    date_time  BIGINT,
                    extra  VARCHAR>,
                `dateTime` AS CAST(TO_TIMESTAMP_LTZ(
                    COALESCE(Person.date_time, Auction.date_time, Bid.date_time), 3) AS TIMESTAMP(3)),
                WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
            ) WITH (
                'connector' = 'filesystem',
                'path' = '%s',
                'format' = 'json'
            )""";

    /** ddl_views.sql. */
    static final String[] VIEWS = {
        """
        CREATE VIEW person AS
        SELECT
            N.Person.id,
            N.Person.name,
            N.Person.email_address AS emailAddress,
            N.Person.credit_card AS creditCard,
            N.Person.city,
            N.Person.state,
            `dateTime`,
            N.Person.extra
        FROM nexmark AS N WHERE N.Person IS NOT NULL""",
        """
        CREATE VIEW auction AS
        SELECT
            N.Auction.id,
            N.Auction.item_name AS itemName,
            N.Auction.description,
            N.Auction.initial_bid AS initialBid,
            N.Auction.reserve,
            `dateTime`,
            CAST(TO_TIMESTAMP_LTZ(N.Auction.expires, 3) AS TIMESTAMP(3)) AS expires,
            N.Auction.seller,
            N.Auction.category,
            N.Auction.extra
        FROM nexmark AS N WHERE N.Auction IS NOT NULL""",
        """
        CREATE VIEW bid AS
        SELECT
            N.Bid.auction,
            N.Bid.bidder,
            N.Bid.price,
            N.Bid.channel,
            N.Bid.url,
            `dateTime`,
            N.Bid.extra
        FROM nexmark AS N WHERE N.Bid IS NOT NULL""",
    };

    /** Each query: its official sink table and INSERT. */
    static final Map<String, String[]> QUERIES = Map.of(
        "q0", new String[] {"""
            CREATE TABLE nexmark_q0 (
              auction  BIGINT,
              bidder  BIGINT,
              price  BIGINT,
              `dateTime`  TIMESTAMP(3),
              extra  VARCHAR
            ) WITH (
              'connector' = 'blackhole'
            )""", """
            INSERT INTO nexmark_q0
            SELECT auction, bidder, price, `dateTime`, extra FROM bid"""},
        "q1", new String[] {"""
            CREATE TABLE nexmark_q1 (
              auction  BIGINT,
              bidder  BIGINT,
              price  DECIMAL(23, 3),
              `dateTime`  TIMESTAMP(3),
              extra  VARCHAR
            ) WITH (
              'connector' = 'blackhole'
            )""", """
            INSERT INTO nexmark_q1
            SELECT
                auction,
                bidder,
                0.908 * price as price, -- convert dollar to euro
                `dateTime`,
                extra
            FROM bid"""},
        "q2", new String[] {"""
            CREATE TABLE nexmark_q2 (
              auction  BIGINT,
              price  BIGINT
            ) WITH (
              'connector' = 'blackhole'
            )""", """
            INSERT INTO nexmark_q2
            SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0"""},
        // The one change to an official text: the generator writes US states in lower case
        // ("or", "id", "ca"), so the state literals are lower case here (the official compares
        // with 'OR', 'ID', 'CA', which would match nothing in this input).
        "q3", new String[] {"""
            CREATE TABLE nexmark_q3 (
              name  VARCHAR,
              city  VARCHAR,
              state  VARCHAR,
              id  BIGINT
            ) WITH (
              'connector' = 'blackhole'
            )""", """
            INSERT INTO nexmark_q3
            SELECT
                P.name, P.city, P.state, A.id
            FROM
                auction AS A INNER JOIN person AS P on A.seller = P.id
            WHERE
                A.category = 10 and (P.state = 'or' OR P.state = 'id' OR P.state = 'ca')"""},
        "q4", new String[] {"""
            CREATE TABLE nexmark_q4 (
              id BIGINT,
              final BIGINT
            ) WITH (
              'connector' = 'blackhole'
            )""", """
            INSERT INTO nexmark_q4
            SELECT
                Q.category,
                AVG(Q.final)
            FROM (
                SELECT MAX(B.price) AS final, A.category
                FROM auction A, bid B
                WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
                GROUP BY A.id, A.category
            ) Q
            GROUP BY Q.category"""},
        "q5", new String[] {"""
            CREATE TABLE nexmark_q5 (
              auction  BIGINT,
              num  BIGINT
            ) WITH (
              'connector' = 'blackhole'
            )""", """
            INSERT INTO nexmark_q5
            SELECT AuctionBids.auction, AuctionBids.num
             FROM (
               SELECT
                 auction,
                 count(*) AS num,
                 window_start AS starttime,
                 window_end AS endtime
                 FROM TABLE(
                         HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
                 GROUP BY auction, window_start, window_end
             ) AS AuctionBids
             JOIN (
               SELECT
                 max(CountBids.num) AS maxn,
                 CountBids.starttime,
                 CountBids.endtime
               FROM (
                 SELECT
                   count(*) AS num,
                   window_start AS starttime,
                   window_end AS endtime
                 FROM TABLE(
                            HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
                 GROUP BY auction, window_start, window_end
                 ) AS CountBids
               GROUP BY CountBids.starttime, CountBids.endtime
             ) AS MaxBids
             ON AuctionBids.starttime = MaxBids.starttime AND
                AuctionBids.endtime = MaxBids.endtime AND
                AuctionBids.num >= MaxBids.maxn"""},
        "q7", new String[] {"""
            CREATE TABLE nexmark_q7 (
              auction  BIGINT,
              bidder  BIGINT,
              price  BIGINT,
              `dateTime`  TIMESTAMP(3),
              extra  VARCHAR
            ) WITH (
              'connector' = 'blackhole'
            )""", """
            INSERT INTO nexmark_q7
            SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra
            from bid B
            JOIN (
              SELECT MAX(price) AS maxprice, window_end as `dateTime`
              FROM TABLE(
                      TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
              GROUP BY window_start, window_end
            ) B1
            ON B.price = B1.maxprice
            WHERE B.`dateTime` BETWEEN B1.`dateTime`  - INTERVAL '10' SECOND AND B1.`dateTime`"""},
        "q8", new String[] {"""
            CREATE TABLE nexmark_q8 (
              id  BIGINT,
              name  VARCHAR,
              stime  TIMESTAMP(3)
            ) WITH (
              'connector' = 'blackhole'
            )""", """
            INSERT INTO nexmark_q8
            SELECT P.id, P.name, P.starttime
            FROM (
              SELECT id, name,
                    window_start AS starttime,
                    window_end AS endtime
              FROM TABLE(
                        TUMBLE(TABLE person, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
              GROUP BY id, name, window_start, window_end
            ) P
            JOIN (
              SELECT seller,
                    window_start AS starttime,
                    window_end AS endtime
              FROM TABLE(
                    TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
              GROUP BY seller, window_start, window_end
            ) A
            ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime"""},
        "q9", new String[] {"""
            CREATE TABLE nexmark_q9 (
              id  BIGINT,
              itemName  VARCHAR,
              description  VARCHAR,
              initialBid  BIGINT,
              reserve  BIGINT,
              `dateTime`  TIMESTAMP(3),
              expires  TIMESTAMP(3),
              seller  BIGINT,
              category  BIGINT,
              extra  VARCHAR,
              auction  BIGINT,
              bidder  BIGINT,
              price  BIGINT,
              bid_dateTime  TIMESTAMP(3),
              bid_extra  VARCHAR
            ) WITH (
              'connector' = 'blackhole'
            )""", """
            INSERT INTO nexmark_q9
            SELECT
                id, itemName, description, initialBid, reserve, `dateTime`, expires, seller, category, extra,
                auction, bidder, price, bid_dateTime, bid_extra
            FROM (
               SELECT A.*, B.auction, B.bidder, B.price, B.`dateTime` AS bid_dateTime, B.extra AS bid_extra,
                 ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.`dateTime` ASC) AS rownum
               FROM auction A, bid B
               WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
            )
            WHERE rownum <= 1"""});

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            throw new IllegalArgumentException("usage: NexmarkSql QUERY INPUT_DIR PARALLELISM INTERVAL_MS DIR");
        }
        String query = args[0];
        File input = new File(args[1]).getAbsoluteFile();
        int parallelism = Integer.parseInt(args[2]);
        long intervalMs = Long.parseLong(args[3]);
        String dir = args[4];
        String[] sql = QUERIES.get(query);
        if (sql == null) {
            throw new IllegalArgumentException("unknown query " + query + ", one of q0-q5, q7-q9");
        }
        long events = countLines(input);

        Configuration conf = new Configuration();
        conf.setString("state.backend.type", "hashmap");
        conf.setString("execution.checkpointing.dir", "file://" + dir + "/checkpoints");
        conf.setString("execution.checkpointing.mode", "EXACTLY_ONCE");
        if (intervalMs > 0) {
            conf.setString("execution.checkpointing.interval", intervalMs + " ms");
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(parallelism);
        StreamTableEnvironment tEnv = StreamTableEnvironment.create(env, EnvironmentSettings.inStreamingMode());
        // Epoch milliseconds become TIMESTAMP(3) in UTC.
        tEnv.getConfig().set("table.local-time-zone", "UTC");
        tEnv.executeSql(String.format(SOURCE, input.toURI()));
        for (String view : VIEWS) {
            tEnv.executeSql(view);
        }
        tEnv.executeSql(sql[0]);
        TableResult insert = tEnv.executeSql(sql[1]);
        JobExecutionResult result = insert.getJobClient().orElseThrow().getJobExecutionResult().get();
        long ms = result.getNetRuntime();
        System.out.printf("query=%s events=%d elapsed_ms=%d events_per_sec=%.0f%n",
                query, events, ms, events / Math.max(ms / 1000.0, 1e-9));
    }

    /** The lines of the input directory's files (or of the input file). */
    static long countLines(File input) throws Exception {
        File[] files = input.isDirectory() ? input.listFiles(File::isFile) : new File[] {input};
        Arrays.sort(files);
        long lines = 0;
        for (File f : files) {
            if (f.getName().startsWith(".") || f.getName().startsWith("_")) {
                continue; // the filesystem connector skips hidden files too
            }
            try (BufferedReader r = Files.newBufferedReader(f.toPath(), StandardCharsets.UTF_8)) {
                while (r.readLine() != null) {
                    lines++;
                }
            }
        }
        return lines;
    }
}
