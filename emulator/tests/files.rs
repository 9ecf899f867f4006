//! The Files API over HTTP: the resumable upload as the SDKs drive it (start, chunks at
//! offsets, finalize), the refusals a client can meet midway, and get, list, delete and
//! download.

mod support;

use std::time::Duration;

use emulator::{Batch, Settings};
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

fn settings(batch: Batch) -> Settings {
    Settings {
        batch,
        ..Settings::instant()
    }
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`2025-12-10T18:27:01.407650525Z`).
fn epoch_seconds(text: &str) -> i64 {
    let (date, time) = text.split_once('T').expect("a T");
    let mut ymd = date.split('-').map(|n| n.parse::<i64>().unwrap());
    let (y, m, d) = (
        ymd.next().unwrap(),
        ymd.next().unwrap(),
        ymd.next().unwrap(),
    );
    let mut hms = time[..8].split(':').map(|n| n.parse::<i64>().unwrap());
    let (h, min, s) = (
        hms.next().unwrap(),
        hms.next().unwrap(),
        hms.next().unwrap(),
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3600 + min * 60 + s
}

#[tokio::test]
async fn a_chunked_resumable_upload_makes_a_file_that_can_be_read_and_deleted() {
    let emu = start(settings(Batch::default())).await;
    let data: Vec<u8> = (0..2_500u32).map(|i| b'a' + (i % 26) as u8).collect();
    let start_reply = start_upload(&emu, data.len(), "jsonl").await;
    assert_eq!(start_reply.status, 200, "{}", start_reply.text);
    assert_eq!(header(&start_reply, "x-goog-upload-status"), "active");
    let url = header(&start_reply, "x-goog-upload-url");
    assert!(
        url.starts_with(&format!(
            "{}/upload/v1beta/files?upload_id=",
            emu.base_url()
        )),
        "the upload URL points at this emulator: {url}"
    );
    let mut offset = 0;
    for chunk in data.chunks(1_000) {
        let last = offset + chunk.len() == data.len();
        let command = if last { "upload, finalize" } else { "upload" };
        let reply = send_chunk(&url, command, offset, chunk).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        offset += chunk.len();
        if !last {
            assert_eq!(header(&reply, "x-goog-upload-status"), "active");
            assert_eq!(
                header(&reply, "x-goog-upload-size-received"),
                offset.to_string()
            );
            continue;
        }
        assert_eq!(header(&reply, "x-goog-upload-status"), "final");
        let file = &reply.json()["file"];
        let id = file["name"]
            .as_str()
            .unwrap()
            .strip_prefix("files/")
            .unwrap()
            .to_string();
        assert_eq!(id.len(), 12);
        assert_eq!(file["displayName"], "test input");
        assert_eq!(file["mimeType"], "jsonl");
        assert_eq!(file["sizeBytes"], "2500", "an int64, so a string");
        assert_eq!(file["state"], "ACTIVE");
        assert_eq!(file["source"], "UPLOADED");
        assert!(
            file.get("downloadUri").is_none(),
            "uploaded files are not downloadable"
        );
        assert_eq!(file["uri"], format!("{}/v1beta/files/{id}", emu.base_url()));
        assert!(!file["sha256Hash"].as_str().unwrap().is_empty());
        let lifetime = epoch_seconds(file["expirationTime"].as_str().unwrap())
            - epoch_seconds(file["createTime"].as_str().unwrap());
        assert_eq!(lifetime, 48 * 3600);

        let fetched = get(&emu, "v1beta", &format!("files/{id}")).await;
        assert_eq!(fetched.status, 200);
        assert_eq!(&fetched.json(), file);
        let download = get(&emu, "v1beta", &format!("files/{id}:download?alt=media")).await;
        assert_eq!(
            download.status, 400,
            "only generated files download: {}",
            download.text
        );
        let deleted = call(&emu, Method::DELETE, &format!("/v1beta/files/{id}"), None).await;
        assert_eq!((deleted.status, deleted.json()), (200, json!({})));
        assert_eq!(
            get(&emu, "v1beta", &format!("files/{id}")).await.status,
            404
        );
    }
    assert_eq!(emu.tracked_state().files, 0);
}

#[tokio::test]
async fn a_chunk_at_the_wrong_offset_is_refused_and_the_upload_resumes() {
    let emu = start(settings(Batch::default())).await;
    let url = header(
        &start_upload(&emu, 10, "text/plain").await,
        "x-goog-upload-url",
    );
    assert_eq!(send_chunk(&url, "upload", 0, b"hello").await.status, 200);
    let refused = send_chunk(&url, "upload, finalize", 4, b"world").await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.json()["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        header(&refused, "x-goog-upload-status"),
        "active",
        "the session survives"
    );
    assert_eq!(header(&refused, "x-goog-upload-size-received"), "5");
    let query = send_chunk(&url, "query", 0, b"").await;
    assert_eq!(header(&query, "x-goog-upload-size-received"), "5");
    let done = send_chunk(&url, "upload, finalize", 5, b"world").await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.json()["file"]["sizeBytes"], "10");
}

#[tokio::test]
async fn too_big_too_long_too_short_or_unknown_uploads_end_final() {
    let emu = start(settings(Batch {
        max_file_bytes: 100,
        ..Batch::default()
    }))
    .await;
    let too_big = start_upload(&emu, 101, "jsonl").await;
    assert_eq!(too_big.status, 400, "{}", too_big.text);
    assert!(
        too_big.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("100 bytes")
    );

    let url = header(&start_upload(&emu, 4, "jsonl").await, "x-goog-upload-url");
    let too_long = send_chunk(&url, "upload, finalize", 0, b"12345").await;
    assert_eq!(too_long.status, 400);
    assert_eq!(header(&too_long, "x-goog-upload-status"), "final");
    let gone = send_chunk(&url, "upload, finalize", 0, b"1234").await;
    assert_eq!(gone.status, 404, "the cancelled session is gone");
    assert_eq!(header(&gone, "x-goog-upload-status"), "final");

    let url = header(&start_upload(&emu, 4, "jsonl").await, "x-goog-upload-url");
    let too_short = send_chunk(&url, "upload, finalize", 0, b"12").await;
    assert_eq!(
        (
            too_short.status,
            header(&too_short, "x-goog-upload-status").as_str()
        ),
        (400, "final")
    );

    let forged = format!(
        "{}/upload/v1beta/files?upload_id=nosuchupload",
        emu.base_url()
    );
    let unknown = send_chunk(&forged, "upload, finalize", 0, b"x").await;
    assert_eq!(
        (
            unknown.status,
            header(&unknown, "x-goog-upload-status").as_str()
        ),
        (404, "final")
    );
    assert_eq!(
        emu.tracked_state().stored_bytes,
        0,
        "nothing kept, nothing reserved"
    );
}

#[tokio::test]
async fn starting_an_upload_needs_the_key_and_the_resumable_headers() {
    let emu = start(settings(Batch::default())).await;
    let url = format!("{}/upload/v1beta/files", emu.base_url());
    let no_key = client()
        .post(&url)
        .header("x-goog-upload-protocol", "resumable")
        .header("x-goog-upload-command", "start")
        .header("x-goog-upload-header-content-length", "3")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 403);
    let not_resumable = client()
        .post(&url)
        .header("x-goog-api-key", "k")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_resumable.status(), 400);
}

#[tokio::test]
async fn files_are_listed_newest_first_across_pages() {
    let emu = start(settings(Batch::default())).await;
    let mut names = Vec::new();
    for i in 0..3u8 {
        names.push(
            upload(&emu, &[i; 3], 10).await["name"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let first = get(&emu, "v1beta", "files?pageSize=2").await.json();
    let page: Vec<&Value> = first["files"].as_array().unwrap().iter().collect();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["name"], names[2].as_str());
    assert_eq!(page[1]["name"], names[1].as_str());
    let token = first["nextPageToken"].as_str().unwrap();
    let second = get(
        &emu,
        "v1beta",
        &format!("files?pageSize=2&pageToken={token}"),
    )
    .await
    .json();
    assert_eq!(second["files"][0]["name"], names[0].as_str());
    assert!(second.get("nextPageToken").is_none());
}

#[tokio::test]
async fn a_file_past_its_lifetime_is_gone() {
    // A zero lifetime: the file is made, then gone by the next request.
    let emu = start(settings(Batch {
        file_lifetime: Duration::ZERO,
        ..Batch::default()
    }))
    .await;
    let name = upload(&emu, b"abc", 10).await["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&emu, "v1beta", &name).await.status, 404);
    assert_eq!(get(&emu, "v1beta", "files").await.json(), json!({}));
    assert_eq!(emu.tracked_state().stored_bytes, 0);
}
