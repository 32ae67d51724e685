#!/usr/bin/env python3
"""Write a VMNetX package (ZIP, members STORED, ZIP64 when needed).

usage: make-package.py OUT.nxpk DISK FORMAT(raw|qcow2) [NAME]

Used by the benchmarks; Python's zipfile is an independent ZIP writer.
"""
import sys
import zipfile

out, disk, fmt = sys.argv[1:4]
name = sys.argv[4] if len(sys.argv) > 4 else "Benchmark VM"
manifest = f"""<?xml version="1.0" encoding="UTF-8"?>
<image xmlns="http://olivearchive.org/xmlns/vmnetx/package" name="{name}">
  <domain path="domain.xml"/>
  <disk path="disk.img"/>
</image>
"""
domain = f"""<domain type="kvm">
  <name>bench</name>
  <memory unit="MiB">512</memory>
  <vcpu>2</vcpu>
  <os><type arch="x86_64" machine="pc">hvm</type></os>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="{fmt}"/>
      <source file="/disk.img"/>
      <target dev="hda" bus="ide"/>
    </disk>
  </devices>
</domain>
"""
with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as package:
    package.comment = b"VMNetX package"
    package.writestr("vmnetx-package.xml", manifest)
    package.writestr("domain.xml", domain)
    package.write(disk, "disk.img")
