//! `--format oci` / `oci-archive`: an OCI image layout (image-spec v1.0) with one
//! gzip'd layer holding the root tree, a config with Entrypoint, Env, WorkingDir and a
//! fixed `created`, and `index.json` naming the manifest by its tag.

use anyhow::Result;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::PackageOptions;
use super::archive;
use super::tree::Tree;

/// The layout as a tree (written as a directory, or tarred for oci-archive).
pub fn layout(rootfs: &Tree, options: &PackageOptions, python: &str) -> Result<Tree> {
    let layer_tar = archive::tar(rootfs)?;
    let diff_id = digest(&layer_tar);
    let layer = archive::gzip(&layer_tar)?;
    let mut entrypoint = vec![format!("/bin/{python}")];
    if let Some(entry) = &options.entry {
        entrypoint.extend(["-m".to_string(), entry.clone()]);
    }
    let config = serde_json::to_vec(&json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": architecture(),
        "os": "linux",
        "config": {
            "Entrypoint": entrypoint,
            "Env": ["PATH=/bin", "LANG=C.UTF-8"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "dlstatic package"}],
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer)],
    }))?;
    let mut manifest_descriptor =
        descriptor("application/vnd.oci.image.manifest.v1+json", &manifest);
    manifest_descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": options.tag});
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_descriptor],
    }))?;

    let mut tree = Tree::default();
    tree.add_bytes(
        "oci-layout",
        0o644,
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )?;
    tree.add_bytes("index.json", 0o644, index)?;
    for blob in [config, manifest, layer] {
        let path = format!("blobs/sha256/{}", &digest(&blob)["sha256:".len()..]);
        if !tree.entries.contains_key(&path) {
            tree.add_bytes(&path, 0o644, blob)?;
        }
    }
    Ok(tree)
}

fn digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": digest(blob), "size": blob.len()})
}

/// The OCI name of the architecture dlstatic (and so the interpreter) was built for.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
