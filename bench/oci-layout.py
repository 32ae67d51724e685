#!/usr/bin/env python3
"""Wrap one gzip layer into an OCI image layout, as `docker build` would
make the original's image (FROM scratch, the two labels).

usage: oci-layout.py LAYER.tar.gz DIR
"""
import gzip
import hashlib
import json
import os
import shutil
import sys

layer, out = sys.argv[1:3]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)


def digest_of(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def add(data):
    hexdigest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, hexdigest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + hexdigest, "size": len(data)}


layer_hex = digest_of(layer)
diff = hashlib.sha256()
with gzip.open(layer, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        diff.update(block)
layer_size = os.path.getsize(layer)
shutil.move(layer, os.path.join(blobs, layer_hex))
config = add(json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Labels": {"org.opencontainers.image.url": "https://olivearchive.org",
                          "org.opencontainers.image.title": "Benchmark VM"}},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff.hexdigest()]},
}).encode())
manifest = add(json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + layer_hex, "size": layer_size}],
}).encode())
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [dict(
        manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
        annotations={"org.opencontainers.image.ref.name": "latest"})]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion": "1.0.0"}')
