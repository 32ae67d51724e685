//! Runs a VM under QEMU for the embedded cloudlet.
//!
//! [`start`] boots a cached qcow2 disk (a containerDisk pulled into a
//! cache) behind a throw-away copy-on-write overlay, so the cached image
//! never changes and many VMs can share it:
//!
//! - the disk is checked first with `qemu-img info` and `qemu-img check`
//!   ([`check_disk`]): a qcow2 image, without a backing file or an external
//!   data file of its own (a pulled image must not make QEMU open host
//!   files), without corruption;
//! - `qemu-img create -f qcow2 -F qcow2 -b DISK WORK_DIR/overlay.qcow2`
//!   makes the overlay; QEMU opens the cached image read-only, through an
//!   explicit `-blockdev` graph (its own backing link cut);
//! - `qemu-system-x86_64` runs as a child process we own (no `-daemonize`),
//!   started from one long-lived thread with a parent-death signal
//!   ([`spawner`]), so it ends with us even if we are killed outright,
//!   with KVM when `/dev/kvm` can be opened, else TCG; VNC listens on the
//!   first free display of `127.0.0.1:0` to `:99` (QEMU picks it, so two
//!   VMs never race for a port; QMP `query-vnc` tells which), loopback
//!   only; no NIC unless asked, then an e1000 on user-mode NAT without host
//!   forwards; `-sandbox on` (seccomp) with everything it can deny denied;
//! - a disk may also be *served* ([`DiskImage::Served`]): a qcow2 image
//!   this process holds, such as a containerDisk still downloading. QEMU
//!   then reads it over NBD from our [`nbd`] server on a socket in the work
//!   directory; its header is checked the same way (`qemu-img info`
//!   through the socket), the overlay gets the image's size without a
//!   backing file, and a failed read pauses the guest (`rerror=stop`)
//!   until [`RunningVm::resume`] once the bytes flow again;
//! - a QMP socket in the work directory: [`RunningVm::stop`] sends `quit`
//!   and kills QEMU if it has not ended after a timeout, then deletes the
//!   overlay and the other files the VM left in its work directory.
//!   Dropping a [`RunningVm`] does the same.
//!
//! The spec's disk bus is the recipe's ([`vmnetx::bus::KubevirtBus`]) and
//! its vCPUs and memory are checked against [`vmnetx::limits`], the bounds
//! every crate from `domain.xml` on applies.
//!
//! Commands are built from argument lists, never from shell strings.
//! [`cleanup_leftovers`] ends the QEMU processes and removes the overlays
//! that a previous run of the cloudlet left under its data directory.
//!
//! The disk checks are explained in `docs/qcow2.md`, the choice between KVM
//! and TCG in `docs/test-environment.md`.
//!
//! The rooms, one concern each:
//!
//! - `spec.rs`: what to run, [`VmSpec`] and [`Accel`] ([`kvm_usable`]),
//!   and the checks a spec passes before anything starts;
//! - `error.rs`: [`VmError`] and the helpers that build it;
//! - `workdir.rs`: the files a VM keeps in its work directory
//!   ([`OVERLAY`], [`PIDFILE`], [`QMP_SOCKET`], [`LOG`]), the directory
//!   made and those files removed;
//! - `disk.rs`: the cached disk checked ([`check_disk`]) and the overlay
//!   made on it;
//! - `args.rs`: QEMU's command line, [`qemu_args`];
//! - `running.rs`: [`start`] and the [`RunningVm`] it returns, up to
//!   [`RunningVm::stop`];
//! - `qmp.rs`: the QMP client;
//! - [`spawner`]: QEMU spawned so that it never outlives us;
//! - `leftovers.rs`: [`cleanup_leftovers`] and its [`Cleanup`] report;
//! - [`nbd`]: a read-only NBD server in our process, so QEMU can read a
//!   disk that is still downloading.

mod args;
mod disk;
mod error;
mod leftovers;
pub mod nbd;
mod qmp;
mod running;
pub mod spawner;
mod spec;
mod workdir;

pub use args::{BaseFile, qemu_args};
pub use disk::check_disk;
pub use error::VmError;
pub use leftovers::{Cleanup, cleanup_leftovers};
pub use running::{RunningVm, start};
pub use spec::{Accel, DiskImage, VmSpec, kvm_usable};
pub use workdir::{LOG, NBD_EXPORT, NBD_SOCKET, OVERLAY, PIDFILE, QMP_SOCKET};
