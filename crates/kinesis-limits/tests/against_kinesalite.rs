//! The proxy in front of kinesalite: throttled GetRecords calls, PutRecords split per shard,
//! read bytes per shard, PutRecord, unknown iterators, the stats page and the binary.
//!
//! Needs kinesalite (`scripts/emulators.sh start kinesalite`) and `RILL_KINESALITE_ENDPOINT`
//! (`eval "$(scripts/emulators.sh env)"`); fails without them.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;
use rill_kinesis_common::test_utils::{
    create_stream, delete_stream, list_shard_ids, read_all, unique_stream_name, Emulator,
};
use rill_kinesis_limits::{Limits, LimitsProxy, STATS_PATH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KIB: usize = 1024;

fn kinesalite() -> anyhow::Result<String> {
    Ok(Emulator::Kinesalite.endpoint()?)
}

async fn start_proxy(limits: Limits) -> anyhow::Result<LimitsProxy> {
    Ok(LimitsProxy::start("127.0.0.1:0".parse()?, &kinesalite()?, limits).await?)
}

/// A client calling through the proxy, without SDK retries (so throttles reach the test).
async fn client_through(proxy: &LimitsProxy) -> anyhow::Result<Client> {
    let connection = Emulator::Kinesalite.connection_builder()?.endpoint(proxy.endpoint()).max_attempts(1).build()?;
    Ok(connection.client().await?)
}

/// A client calling kinesalite directly.
async fn direct_client() -> anyhow::Result<Client> {
    Ok(Emulator::Kinesalite.client().await?)
}

/// True if the error is AWS's `ProvisionedThroughputExceededException`.
fn is_throttle<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code()) == Some("ProvisionedThroughputExceededException")
}

async fn iterator(client: &Client, stream: &str, shard_id: &str) -> anyhow::Result<String> {
    let out = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await?;
    Ok(out.shard_iterator().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_back_to_back_get_records_calls_on_one_shard_are_partly_throttled() -> anyhow::Result<()> {
    let proxy = start_proxy(Limits { reads_per_shard: 5, ..Limits::default() }).await?;
    let client = client_through(&proxy).await?;
    let stream = unique_stream_name("limits-reads");
    create_stream(&direct_client().await?, &stream, 1).await?;
    let shard_id = list_shard_ids(&client, &stream).await?.remove(0);
    let mut it = iterator(&client, &stream, &shard_id).await?;

    let (mut admitted, mut throttled) = (0, 0);
    for _ in 0..10 {
        match client.get_records().shard_iterator(&it).send().await {
            Ok(out) => {
                admitted += 1;
                it = out.next_shard_iterator().unwrap_or(&it).to_string();
            }
            Err(err) if is_throttle(&err) => {
                throttled += 1;
                let service = err.as_service_error().map(|e| e.is_provisioned_throughput_exceeded_exception());
                assert_eq!(service, Some(true), "the SDK sees its own exception type");
                let message = err.as_service_error().and_then(|e| e.message()).unwrap_or_default().to_string();
                assert!(message.contains(&shard_id) && message.contains(&stream), "{message}");
            }
            Err(err) => return Err(err.into()),
        }
    }
    assert!(admitted >= 5, "only {admitted} of 10 calls admitted");
    assert!(throttled >= 3, "only {throttled} of 10 back-to-back calls throttled");
    let stats = proxy.stats();
    assert_eq!(stats.get_records_throttled, throttled);
    assert_eq!(stats.get_records_admitted, admitted);
    let shard = stats.shard(&stream, &shard_id).cloned().unwrap_or_default();
    assert_eq!((shard.get_records_calls, shard.get_records_throttled), (admitted, throttled));
    assert!(shard.max_get_records_calls_in_one_second >= 5, "{shard:?}");
    delete_stream(&direct_client().await?, &stream).await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_records_forwards_only_the_entries_each_shard_can_take() -> anyhow::Result<()> {
    let proxy = start_proxy(Limits { write_records_per_shard: 100, ..Limits::default() }).await?;
    let client = client_through(&proxy).await?;
    let direct = direct_client().await?;
    let stream = unique_stream_name("limits-puts");
    create_stream(&direct, &stream, 2).await?;

    let entries: Vec<PutRecordsRequestEntry> = (0..500)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{i}"))
                .data(Blob::new(format!("record-{i}")))
                .build()
        })
        .collect::<Result<_, _>>()?;
    let out = client.put_records().stream_name(&stream).set_records(Some(entries)).send().await?;

    assert_eq!(out.records().len(), 500);
    let mut admitted = BTreeSet::new();
    let mut throttled = 0;
    for (i, result) in out.records().iter().enumerate() {
        match result.error_code() {
            None => {
                assert!(result.sequence_number().is_some_and(|s| !s.is_empty()), "entry {i} has no sequence number");
                admitted.insert((format!("key-{i}"), format!("record-{i}").into_bytes()));
            }
            Some("ProvisionedThroughputExceededException") => {
                throttled += 1;
                let message = result.error_message().unwrap_or_default();
                assert!(message.contains("Rate exceeded for shard shardId-") && message.contains(&stream), "{message}");
            }
            Some(other) => anyhow::bail!("entry {i} failed with {other}"),
        }
    }
    assert_eq!(admitted.len(), 200, "each of the 2 shards takes 100 records in the first second");
    assert_eq!(out.failed_record_count(), Some(throttled));
    assert_eq!(throttled, 300);

    let stored: BTreeSet<(String, Vec<u8>)> =
        read_all(&direct, &stream).await?.into_iter().map(|r| (r.partition_key, r.data)).collect();
    assert_eq!(stored, admitted, "kinesalite holds exactly the admitted entries");

    let stats = proxy.stats();
    assert_eq!((stats.put_entries_admitted, stats.put_entries_throttled), (200, 300));
    for shard_id in list_shard_ids(&direct, &stream).await? {
        let shard = stats.shard(&stream, &shard_id).cloned().unwrap_or_default();
        assert_eq!(shard.put_entries, 100, "{shard_id}: {shard:?}");
    }
    delete_stream(&direct, &stream).await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_read_throttles_its_shard_and_leaves_the_other_shard_alone() -> anyhow::Result<()> {
    let proxy = start_proxy(Limits { read_bytes_per_shard: 10 * KIB as u64, ..Limits::default() }).await?;
    let client = client_through(&proxy).await?;
    let direct = direct_client().await?;
    let stream = unique_stream_name("limits-bytes");
    create_stream(&direct, &stream, 2).await?;
    let shards = list_shard_ids(&direct, &stream).await?;
    // 50 records of 1 KiB on the first shard (hash key 0), one record on the second.
    let mut entries: Vec<PutRecordsRequestEntry> = (0..50)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("big-{i}"))
                .explicit_hash_key("0")
                .data(Blob::new(vec![b'x'; KIB]))
                .build()
        })
        .collect::<Result<_, _>>()?;
    entries.push(
        PutRecordsRequestEntry::builder()
            .partition_key("small")
            .explicit_hash_key(u128::MAX.to_string())
            .data(Blob::new(b"small".to_vec()))
            .build()?,
    );
    let out = direct.put_records().stream_name(&stream).set_records(Some(entries)).send().await?;
    assert_eq!(out.failed_record_count(), Some(0));

    let first = iterator(&client, &stream, &shards[0]).await?;
    let big = client.get_records().shard_iterator(&first).limit(10_000).send().await?;
    assert_eq!(big.records().len(), 50);
    let next = big.next_shard_iterator().unwrap_or_default().to_string();
    let err = client.get_records().shard_iterator(&next).send().await.expect_err("the shard owes 40 KiB");
    assert!(is_throttle(&err), "{err:?}");

    let second = iterator(&client, &stream, &shards[1]).await?;
    let small = client.get_records().shard_iterator(&second).send().await?;
    assert_eq!(small.records().len(), 1, "the other shard is unaffected");

    let stats = proxy.stats();
    let big_shard = stats.shard(&stream, &shards[0]).cloned().unwrap_or_default();
    assert_eq!((big_shard.bytes_read, big_shard.records_read), (50 * KIB as u64, 50));
    assert_eq!((big_shard.get_records_calls, big_shard.get_records_throttled), (1, 1));
    let small_shard = stats.shard(&stream, &shards[1]).cloned().unwrap_or_default();
    assert_eq!((small_shard.bytes_read, small_shard.get_records_throttled), (5, 0));
    delete_stream(&direct, &stream).await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_put_record_in_the_same_second_is_throttled_when_a_shard_takes_one_record() -> anyhow::Result<()> {
    let proxy = start_proxy(Limits { write_records_per_shard: 1, ..Limits::default() }).await?;
    let client = client_through(&proxy).await?;
    let direct = direct_client().await?;
    let stream = unique_stream_name("limits-put-record");
    create_stream(&direct, &stream, 1).await?;
    let put = |n: u8| client.put_record().stream_name(&stream).partition_key("k").data(Blob::new(vec![n])).send();
    put(1).await?;
    let err = put(2).await.expect_err("the shard takes one record per second");
    assert!(is_throttle(&err), "{err:?}");
    assert_eq!(read_all(&direct, &stream).await?.len(), 1);
    assert_eq!((proxy.stats().put_entries_admitted, proxy.stats().put_entries_throttled), (1, 1));
    delete_stream(&direct, &stream).await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iterator_the_proxy_never_saw_is_forwarded_and_counted() -> anyhow::Result<()> {
    let proxy = start_proxy(Limits::default()).await?;
    let client = client_through(&proxy).await?;
    let direct = direct_client().await?;
    let stream = unique_stream_name("limits-unknown");
    create_stream(&direct, &stream, 1).await?;
    let shard_id = list_shard_ids(&direct, &stream).await?.remove(0);
    let foreign = iterator(&direct, &stream, &shard_id).await?;
    for _ in 0..8 {
        client.get_records().shard_iterator(&foreign).send().await?;
    }
    let stats = proxy.stats();
    assert_eq!((stats.unknown_iterators, stats.get_records_throttled), (8, 0));
    delete_stream(&direct, &stream).await?;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_page_serves_the_stats_as_json() -> anyhow::Result<()> {
    let proxy = start_proxy(Limits::default()).await?;
    let client = client_through(&proxy).await?;
    client.list_streams().send().await?;
    let mut connection = tokio::net::TcpStream::connect(proxy.local_addr()).await?;
    let request = format!("GET {STATS_PATH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    connection.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    connection.read_to_string(&mut answer).await?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body)?;
    assert_eq!(json["get_records_throttled"], 0);
    assert!(json["shards"].is_object(), "{json}");
    proxy.shutdown().await;
    Ok(())
}

#[test]
fn the_binary_prints_its_listen_address_and_forwards_calls() -> anyhow::Result<()> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kinesis-limits"))
        .args(["--listen", "127.0.0.1:0", "--upstream", &kinesalite()?, "--reads-per-shard", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        BufReader::new(stdout).read_line(&mut line)?;
    }
    let outcome = (|| -> anyhow::Result<()> {
        let addr = line
            .trim()
            .strip_prefix("kinesis-limits listening on ")
            .ok_or_else(|| anyhow::anyhow!("unexpected first line {line:?}"))?
            .to_string();
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async {
            let connection = Emulator::Kinesalite
                .connection_builder()?
                .endpoint(format!("http://{addr}"))
                .max_attempts(1)
                .build()?;
            connection.client().await?.list_streams().send().await?;
            anyhow::Ok(())
        })
    })();
    child.kill()?;
    child.wait()?;
    outcome
}
