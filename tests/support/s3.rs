//! Helpers for tests against moto's S3 server: buckets, listings, downloads, and the settings a
//! job reads.

use std::process::Command;

use rand::Rng;

/// The S3 endpoint `scripts/test.sh` started (`RILL_S3_ENDPOINT`).
pub(crate) fn endpoint() -> String {
    std::env::var("RILL_S3_ENDPOINT").expect("RILL_S3_ENDPOINT is required for this test (scripts/test.sh sets it)")
}

/// A new bucket on the S3 server, named after the test.
pub(crate) fn bucket(name: &str) -> String {
    let bucket = format!("{name}-{:08x}", rand::rng().random::<u32>());
    let response = reqwest::blocking::Client::new().put(format!("{}/{bucket}", endpoint())).send().unwrap();
    assert!(response.status().is_success(), "create bucket {bucket}: {}", response.status());
    bucket
}

/// The names of the objects under `prefix` in `bucket` (S3 ListObjectsV2).
pub(crate) fn object_keys(bucket: &str, prefix: &str) -> Vec<String> {
    let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", endpoint());
    let body = reqwest::blocking::get(url).unwrap().text().unwrap();
    body.split("<Key>").skip(1).filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string())).collect()
}

/// The S3 settings a job reads, as the AWS SDKs read them.
pub(crate) fn s3_env(cmd: &mut Command) -> &mut Command {
    s3_env_at(cmd, &endpoint())
}

pub(crate) fn s3_env_at<'a>(cmd: &'a mut Command, endpoint: &str) -> &'a mut Command {
    cmd.env("AWS_ENDPOINT_URL_S3", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
}

/// Downloads every committed `part-*` object under `prefix` into `dir/output`, as files.
pub(crate) fn download_output(bucket: &str, prefix: &str, dir: &std::path::Path) {
    // Only the objects directly under the prefix: not `_in-progress/`, `_committed/` or
    // `_rolled-back/`; and not `_owner` (names starting with `_` are not output, as for Hadoop's
    // and Spark's readers).
    let url = format!("{}/{bucket}?list-type=2&max-keys=1000&delimiter=/&prefix={prefix}", endpoint());
    let listing = reqwest::blocking::get(url).unwrap().text().unwrap();
    assert!(!listing.contains("<IsTruncated>true</IsTruncated>"), "more than 1000 output objects");
    let out = dir.join("output");
    std::fs::create_dir_all(&out).unwrap();
    let keys = listing.split("<Key>").skip(1).filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()));
    for key in keys {
        let name = key.rsplit('/').next().unwrap().to_string();
        if name.starts_with('_') {
            continue;
        }
        assert!(name.starts_with("part-"), "only committed parts are visible: {key}");
        let body = reqwest::blocking::get(format!("{}/{bucket}/{key}", endpoint())).unwrap().bytes().unwrap();
        std::fs::write(out.join(name), body).unwrap();
    }
}
