#!/usr/bin/env bash
# Installs what olive2022 and its tests need on a fresh Debian 12 machine.
# Idempotent; run as root (or with sudo available). Safe to re-run.
set -euo pipefail

# Debian packages:
#   qemu-utils   qemu-img, the qcow2 oracle (check, compare, info)
#   e2fsprogs    mke2fs -d, to fill test disks with real files
#   time         GNU time, peak RSS in the benchmarks
#   python3-venv the original olive2022 from PyPI, as a side-by-side oracle
#   docker-registry  a real OCI registry (CNCF distribution) on loopback
#   skopeo umoci     independent OCI clients to verify what we push and write
#   apache2-utils    htpasswd, for the registry's authentication
#   wireguard-go wireguard-tools  the namespace cloudlet's WireGuard endpoint
#                    (and the test's independent client), `wg genkey/set/show`
#   dnsmasq-base     the cloudlet's cluster DNS (vmi-vnc.<deployment>.svc…)
#   tigervnc-standalone-server  Xvnc, the cloudlet's RFB 3.8 server
#   x11-xserver-utils  xsetroot, paints the Xvnc screen a recognisable colour
#   bind9-dnsutils   dig, resolves through the tunnel in the fixture's test
#   iproute2 nftables  namespaces, veths; packet loss and the unanswered
#                    handshake (nftables: this kernel has no sch_netem)
#   desktop-file-utils  desktop-file-validate, update-desktop-database: the
#                    `install` handler's checks and desktop database refresh
#   xdg-utils libglib2.0-bin  xdg-mime and gio: the desktop's own view of the
#                    default vmnetx+https handler and a real launch of it
#   xvfb tigervnc-viewer imagemagick  a real viewer on a virtual screen, and
#                 the screenshot that shows the VM's screen reached it
#   syslinux syslinux-common mtools dosfstools  `olive2022 demo` builds its
#                 bootable demo disk with them: mkfs.vfat, mcopy, and
#                 SYSLINUX showing a message at its boot prompt
#   systemd      systemd-analyze: the test of the cloudlet's unit file
#                 (contrib/systemd) runs `systemd-analyze verify` on it
#   prometheus   a real Prometheus scrapes the cloudlet's /metrics in a test
#   man-db groff-base  `man -l` renders the pages `olive2022 man` writes
#   novnc        noVNC's page and scripts, which `launch --browser` serves
#                 from /usr/share/novnc (a run-time dependency of that mode)
#   chromium     a real headless browser shows the demo VM through
#                 `demo --browser` in a test (driven over its DevTools pipe)
#   golang-docker-credential-helpers pass gnupg  a real Docker credential
#                 helper (docker-credential-pass over a throw-away GPG key)
#                 gives the registry tests their credentials
#   openssl      the throw-away CA and certificate of the HTTPS registry tests
#   python3-zeroconf  the Python mDNS library Sinfonia's tier 2 announces
#                 with: the zeroconf test browses for our cloudlet and
#                 announces a tier 2 for `launch --zeroconf` with it
packages=(qemu-utils e2fsprogs time python3-venv ca-certificates
    docker-registry skopeo umoci apache2-utils curl
    wireguard-go wireguard-tools dnsmasq-base tigervnc-standalone-server
    x11-xserver-utils bind9-dnsutils iproute2 nftables
    desktop-file-utils xdg-utils libglib2.0-bin
    xvfb tigervnc-viewer imagemagick
    syslinux syslinux-common mtools dosfstools systemd prometheus
    man-db groff-base novnc chromium
    golang-docker-credential-helpers pass gnupg openssl python3-zeroconf)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The embedded cloudlet's VM runtime: QEMU from Debian 12 (7.2).
#   qemu-system-x86 qemu-system-common  qemu-system-x86_64 and its shared files
#   qemu-block-extra  the block drivers of that QEMU version
# These packages require one another at exactly the same version, and a
# newer qemu-utils (10.0 from backports, preinstalled on some machines)
# conflicts: all four are pinned to the Debian 7.2 that apt offers, and
# qemu-utils is downgraded if need be. Without recommends: no GTK front end.
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    qemu_version() {
        apt-cache madison qemu-utils 2>/dev/null |
            awk -F'|' '{ gsub(/ /, "", $2) } $2 ~ /^(1:)?7\.2[+~-]/ { print $2; exit }'
    }
    version=$(qemu_version)
    if [ -z "$version" ]; then
        as_root apt-get update -qq
        version=$(qemu_version)
    fi
    if [ -z "$version" ]; then
        echo "setup: apt offers no qemu-utils 7.2 (Debian 12); cannot install qemu-system-x86" >&2
        exit 1
    fi
    echo "setup: installing qemu-system-x86 $version (and qemu-utils at the same version)"
    qemu=()
    for package in qemu-system-x86 qemu-utils qemu-system-common qemu-block-extra; do
        qemu+=("$package=$version")
    done
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends --allow-downgrades "${qemu[@]}" >/dev/null
fi

# The original tool (olive2022 0.1.7 from PyPI): the URL → UUID oracle.
oracle=${OLIVE2022_ORACLE_VENV:-/opt/olive-oracle}
if [ ! -x "$oracle/bin/olive2022" ]; then
    echo "setup: installing the original olive2022 0.1.7 into $oracle"
    as_root python3 -m venv "$oracle"
    as_root "$oracle/bin/pip" install -q olive2022==0.1.7
fi

# MaxMind's MaxMind DB format writer from PyPI (mmdb-writer): the tests of
# `--geoip-db` write a tiny GeoLite2-City-shaped .mmdb with it. (Not
# Debian's Perl writer: its dependencies fill /usr/share/perl5, which the
# test disks copy, past their size.)
mmdb_writer=${OLIVE2022_MMDB_WRITER_VENV:-/opt/mmdb-writer}
if [ ! -x "$mmdb_writer/bin/python3" ] || ! "$mmdb_writer/bin/python3" -c 'import mmdb_writer' 2>/dev/null; then
    echo "setup: installing mmdb-writer 0.2.7 into $mmdb_writer"
    as_root python3 -m venv "$mmdb_writer"
    as_root "$mmdb_writer/bin/pip" install -q mmdb-writer==0.2.7
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true
