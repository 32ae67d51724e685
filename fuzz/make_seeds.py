#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/seeds/<target>/.

The seeds are the well-formed inputs of the unit tests (plus a few near
misses), small so that the committed corpus stays well under 1 MB. Run from
the repository root; qcow2 seeds need qemu-img and qemu-io, deployment seeds
the Python `cryptography` package (for the client's public key). The output
is committed; rerun only to change the seeds.
"""

import base64
import io
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zipfile

SEEDS = os.path.join("fuzz", "seeds")

MANIFEST = """<?xml version="1.0" encoding="UTF-8"?>
<image xmlns="http://olivearchive.org/xmlns/vmnetx/package" name="Windows 3.1">
  <domain path="domain.xml"/>
  <disk path="disk.img"/>
  <memory path="memory.img"/>
</image>
"""

DOMAIN = """<domain type="kvm">
  <name>machine</name>
  <memory unit="MiB">256</memory>
  <vcpu>2</vcpu>
  <os><type arch="i686" machine="pc-1.0">hvm</type></os>
  <devices>
    <disk type="file" device="cdrom"><target dev="hdc" bus="usb"/></disk>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2"/>
      <source file="/disk.img"/>
      <target dev="hda" bus="ide"/>
    </disk>
    <interface type="user"><model type="ne2k_pci"/></interface>
  </devices>
</domain>
"""


def write(target, name, data):
    directory = os.path.join(SEEDS, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(directory, name), "wb") as out:
        out.write(data)


def package_zip(method, disk=b"disk contents " * 8, manifest=MANIFEST):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.comment = b"VMNetX package"
        archive.writestr("vmnetx-package.xml", manifest, compress_type=zipfile.ZIP_STORED)
        archive.writestr("domain.xml", DOMAIN, compress_type=zipfile.ZIP_STORED)
        archive.writestr("disk.img", disk, compress_type=method)
        archive.writestr("memory.img", b"memory", compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def packages():
    write("package", "stored", package_zip(zipfile.ZIP_STORED))
    write("package", "deflated", package_zip(zipfile.ZIP_DEFLATED))
    no_memory = MANIFEST.replace('  <memory path="memory.img"/>\n', "")
    write("package", "no-memory", package_zip(zipfile.ZIP_STORED, manifest=no_memory))
    write("package", "manifest.xml", MANIFEST)


def domains():
    write("domain_xml", "full.xml", DOMAIN)
    write("domain_xml", "empty.xml", "<domain/>")
    write("domain_xml", "bare-disk.xml",
          "<domain><os><type>hvm</type></os><devices><disk/></devices></domain>")
    write("domain_xml", "memory-kib.xml",
          "<domain><memory unit='KiB'>524288</memory><currentMemory>1</currentMemory></domain>")
    write("domain_xml", "virtio.xml",
          "<domain><vcpu placement='static'>4</vcpu><devices><disk type='file' device='disk'>"
          "<driver name='qemu' type='raw'/><target dev='vda' bus='virtio'/></disk>"
          "<interface type='network'/></devices></domain>")
    write("domain_xml", "entities.xml", "<domain><vcpu>&#x31;</vcpu></domain>")


def qcow2_images():
    with tempfile.TemporaryDirectory() as tmp:
        def image(name, options, size="64K", write_data=True, convert=None):
            path = os.path.join(tmp, name)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", options, path, size],
                           check=True)
            if write_data:
                for offset, pattern in ((0, 0x41), (8192, 0x00), (20480, 0x5a)):
                    subprocess.run(["qemu-io", "-c", f"write -P {pattern} {offset} 1024", path],
                                   check=True, stdout=subprocess.DEVNULL)
                subprocess.run(["qemu-io", "-c", "write -z 4096 512", path],
                               check=True, stdout=subprocess.DEVNULL)
            if convert is not None:
                converted = path + ".c"
                subprocess.run(["qemu-img", "convert", "-q", "-c", "-O", "qcow2", "-o", convert,
                                path, converted], check=True)
                path = converted
            with open(path, "rb") as f:
                write("qcow2", name, f.read())

        image("v3-data", "cluster_size=512")
        image("v2-data", "cluster_size=512,compat=0.10")
        image("v3-empty", "cluster_size=512", write_data=False)
        image("v3-deflate", "cluster_size=512",
              convert="cluster_size=512,compression_type=zlib")
        image("v3-zstd", "cluster_size=512",
              convert="cluster_size=512,compression_type=zstd")


def urls():
    with open(os.path.join("crates", "vmnetx", "tests", "data", "vmnetx-uuid.tsv")) as tsv:
        for number, line in enumerate(tsv):
            url = line.rstrip("\n").split("\t")[0]
            write("url", f"vector-{number:02}", url)
    for name, url in (
        ("dots-and-port", "VMNETX://OliveArchive.org:0443/a/./b/../c?token=x#y"),
        ("idna", "vmnetx+https://bücher.example/straße/%7e%41?q"),
        ("ipv6", "vmnetx+http://[::1]:8080/a%2fb/"),
        ("userinfo", "vmnetx://user:p%61ss@host.example/"),
    ):
        write("url", name, url)


def recipes():
    write("recipe", "minimal.yaml", "chart: vmi\nversion: 0.2.0\n")
    write("recipe", "plain-tags.yaml",
          "description: |\n  Hello !world\nchart: !!str vmi # ok!\nversion: \"1!\"\n")
    write("recipe", "values.yaml",
          "description: Windows 3.1\nchart: https://example.org/charts/vmi\nversion: 0.1.4\n"
          "restricted: false\nvalues:\n  containerDisk:\n    name: registry.example/vm\n"
          "    tag: latest\n  resources: {cpu: 2, memory: 256Mi}\n  ports: [5900, 22]\n"
          "  ratio: 0.5\n  empty: null\n")
    write("recipe", "python-tag.yaml",
          "chart: vmi\nversion: 0.1.4\nvalues:\n  containerDisk:\n"
          "    name: !!python/object:uuid.UUID\n      int: 1\n")


def deployments():
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    # The harness's client (fuzzing::deployment): private key [7; 32].
    public = X25519PrivateKey.from_private_bytes(bytes([7] * 32)).public_key()
    client = base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    peer = base64.b64encode(bytes(range(32))).decode()
    deployment = {
        "DeploymentName": "bold-tesla",
        "UUID": "835a9728-a1f7-4d0f-82f8-cd0da8838673",
        "ApplicationKey": client,
        "Status": "Deployed",
        "Created": "2026-11-26T03:00:00+00:00",
        "TunnelConfig": {
            "publicKey": peer,
            "allowedIPs": ["0.0.0.0/0", "10.43.0.0/16"],
            "endpoint": "203.0.113.7:51820",
            "address": ["10.5.0.23"],
            "dns": ["10.43.0.10", "bold-tesla.svc.cluster.local", "svc.cluster.local"],
        },
    }
    # First byte: the status (index into the harness's table, 0 is 200);
    # second: the media type (0 is application/json).
    write("deployment", "deployed", bytes([0, 0]) + json.dumps([deployment]).encode())
    expired = dict(deployment, Status="Expired")
    del expired["TunnelConfig"]
    write("deployment", "expired", bytes([0, 0]) + json.dumps([expired]).encode())
    write("deployment", "empty-list", bytes([0, 2]) + b"[]")
    problem = {"type": "about:blank", "title": "Not Found", "status": 404,
               "detail": "no recipe for this UUID"}
    write("deployment", "problem", bytes([4, 3]) + json.dumps(problem).encode())
    write("deployment", "html", bytes([6, 4]) + b"<html><body><h1>502 Bad Gateway</h1></body></html>")


def dns_query(ident, name, qtype):
    out = struct.pack(">H", ident) + bytes([0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1])
    for label in filter(None, name.split(".")):
        out += bytes([len(label)]) + label.encode()
    out += b"\0" + struct.pack(">HH", qtype, 1)
    return out + bytes([0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0])


def dns():
    name = "vmi-vnc.bold-tesla.svc.cluster.local"
    write("dns", "a", dns_query(0x1234, name, 1))
    write("dns", "aaaa", dns_query(2, name, 28))
    write("dns", "other-name", dns_query(3, "example.com", 1))
    write("dns", "any-upper", dns_query(4, name.upper() + ".", 255))


def pixel_format_rgb888():
    # bpp 32, depth 24, little endian, true colour, max 255, shifts 16/8/0.
    return bytes([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0])


def server_init(width, height, name, pixel_format=None):
    pixel_format = pixel_format or pixel_format_rgb888()
    return struct.pack(">HH", width, height) + pixel_format + struct.pack(">I", len(name)) + name


def raw_update(rectangles):
    out = bytes([0, 0]) + struct.pack(">H", len(rectangles))
    for x, y, w, h, (r, g, b) in rectangles:
        out += struct.pack(">HHHHi", x, y, w, h, 0) + bytes([b, g, r, 0]) * (w * h)
    return out


def rfb():
    v38 = b"RFB 003.008\n" + bytes([1, 1]) + struct.pack(">I", 0)
    write("rfb", "v3.8-raw", v38 + server_init(8, 4, b"vm") +
          raw_update([(0, 0, 8, 4, (10, 20, 30)), (2, 1, 3, 2, (200, 0, 0))]))
    write("rfb", "v3.3", b"RFB 003.003\n" + struct.pack(">I", 1) + server_init(4, 4, b"old") +
          raw_update([(0, 0, 4, 4, (1, 2, 3))]))
    write("rfb", "v3.7", b"RFB 003.007\n" + bytes([2, 2, 1]) + server_init(2, 2, b"") +
          bytes([2]))
    desktop_size = bytes([0, 0, 0, 1]) + struct.pack(">HHHHi", 0, 0, 6, 3, -223)
    other = bytes([1, 0, 0, 0, 0, 1]) + bytes(6) + bytes([2]) + bytes([3, 0, 0, 0]) + \
        struct.pack(">I", 5) + b"hello"
    write("rfb", "resize-and-others", v38 + server_init(4, 2, b"vm") + desktop_size + other +
          raw_update([(0, 0, 6, 3, (9, 9, 9))]))
    colour_map = bytes([8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    write("rfb", "colour-map", v38 + server_init(2, 2, b"cm", colour_map) +
          raw_update([(0, 0, 2, 2, (5, 6, 7))]))
    write("rfb", "refused", b"RFB 003.008\n" + bytes([0]) + struct.pack(">I", 6) + b"no way")


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    packages()
    domains()
    qcow2_images()
    urls()
    recipes()
    deployments()
    dns()
    rfb()


if __name__ == "__main__":
    main()
