//! The test helpers themselves, against both emulators: streams are created, filled and read
//! back, and injected faults reach the SDK as the right error classes without writing data.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use rill_kinesis_common::test_utils::{
    create_stream, delete_stream, put_records, read_all, unique_stream_name, Emulator, Fault, FaultInjector,
};
use rill_kinesis_common::{api_error, AwsErrorKind};

fn records(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n).map(|i| (format!("key-{}", i % 7), format!("record-{i}").into_bytes())).collect()
}

async fn created_stream_reads_back_every_record(emulator: Emulator) -> anyhow::Result<()> {
    let client = emulator.client().await?;
    let stream = unique_stream_name("common-roundtrip");
    create_stream(&client, &stream, 2).await?;
    put_records(&client, &stream, &records(50)).await?;
    let mut got: Vec<String> =
        read_all(&client, &stream).await?.into_iter().map(|r| String::from_utf8_lossy(&r.data).into_owned()).collect();
    got.sort();
    let mut want: Vec<String> = (0..50).map(|i| format!("record-{i}")).collect();
    want.sort();
    assert_eq!(got, want, "{}", emulator.name());
    delete_stream(&client, &stream).await?;
    Ok(())
}

async fn injected_faults_surface_with_their_class_and_write_nothing(emulator: Emulator) -> anyhow::Result<()> {
    let plain = emulator.client().await?;
    let stream = unique_stream_name("common-faults");
    create_stream(&plain, &stream, 1).await?;

    let faults = FaultInjector::new();
    let connection = faults.install(emulator.connection_builder()?.max_attempts(1)).build()?;
    let client = connection.client().await?;
    let entries: Vec<PutRecordsRequestEntry> = records(10)
        .into_iter()
        .map(|(k, d)| PutRecordsRequestEntry::builder().partition_key(k).data(Blob::new(d)).build())
        .collect::<Result<_, _>>()?;

    faults.inject("PutRecords", Fault::throttled(), 1);
    let err = client.put_records().stream_name(&stream).set_records(Some(entries.clone())).send().await.unwrap_err();
    assert_eq!(api_error("PutRecords", Some(&stream), err).class(), AwsErrorKind::Throttled);

    faults.inject("PutRecords", Fault::throttle_entries(3), 1);
    let out = client.put_records().stream_name(&stream).set_records(Some(entries)).send().await?;
    assert_eq!(out.failed_record_count(), Some(4));
    let failed: Vec<usize> =
        out.records().iter().enumerate().filter(|(_, r)| r.error_code().is_some()).map(|(i, _)| i).collect();
    assert_eq!(failed, vec![0, 3, 6, 9]);
    assert_eq!(read_all(&plain, &stream).await?.len(), 6, "failed entries must not be written");

    let shard = rill_kinesis_common::test_utils::list_shard_ids(&client, &stream).await?.remove(0);
    let it = client
        .get_shard_iterator()
        .stream_name(&stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await?;
    faults.inject("GetRecords", Fault::expired_iterator(), 1);
    let err = client.get_records().shard_iterator(it.shard_iterator().unwrap_or_default()).send().await.unwrap_err();
    assert_eq!(api_error("GetRecords", Some(&stream), err).class(), AwsErrorKind::ExpiredIterator);
    assert_eq!(faults.injected("PutRecords"), 2);
    assert_eq!(faults.injected("GetRecords"), 1);
    delete_stream(&plain, &stream).await?;
    Ok(())
}

#[tokio::test]
async fn created_stream_reads_back_every_record_on_kinesalite() -> anyhow::Result<()> {
    created_stream_reads_back_every_record(Emulator::Kinesalite).await
}

#[tokio::test]
async fn created_stream_reads_back_every_record_on_kinesis_local() -> anyhow::Result<()> {
    created_stream_reads_back_every_record(Emulator::KinesisLocal).await
}

#[tokio::test]
async fn injected_faults_surface_with_their_class_and_write_nothing_on_kinesalite() -> anyhow::Result<()> {
    injected_faults_surface_with_their_class_and_write_nothing(Emulator::Kinesalite).await
}

#[tokio::test]
async fn injected_faults_surface_with_their_class_and_write_nothing_on_kinesis_local() -> anyhow::Result<()> {
    injected_faults_surface_with_their_class_and_write_nothing(Emulator::KinesisLocal).await
}
