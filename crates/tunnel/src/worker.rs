//! What a running [`Tunnel`](crate::Tunnel) and a running
//! [`TunnelServer`](crate::TunnelServer) have in common: one task owns the
//! engine (sockets, boringtun, smoltcp); handles talk to it through a
//! bounded command channel and wake it; it stops on a shutdown command, or
//! is aborted when its owner is dropped.
//!
//! Only the commands differ between the two sides, hence the generics:
//! `C` is the command type, `S` the state the task publishes to handles.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::TunnelError;

/// Commands queued to a task before senders wait.
const COMMAND_QUEUE: usize = 64;

/// State a task shares with its handles; through it handles wake the task
/// (a command is waiting, or a stream moved data).
pub(crate) trait Wake: Send + Sync + 'static {
    /// Wakes the task.
    fn wake(&self);
}

/// A command type with a command that ends the task's loop.
pub(crate) trait Stop: Send + 'static {
    /// The command asking the task to stop.
    fn stop() -> Self;
}

/// The handles' way to the task: its command channel and its shared
/// state. Cheap to clone.
pub(crate) struct Mailbox<C, S> {
    commands: mpsc::Sender<C>,
    shared: Arc<S>,
}

impl<C, S> Clone for Mailbox<C, S> {
    fn clone(&self) -> Self {
        Mailbox {
            commands: self.commands.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C: Send, S: Wake> Mailbox<C, S> {
    /// A mailbox to a task publishing `shared`, and the task's end of the
    /// command channel.
    pub fn new(shared: Arc<S>) -> (Self, mpsc::Receiver<C>) {
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        (Mailbox { commands, shared }, receiver)
    }

    /// What the task publishes.
    pub fn shared(&self) -> &Arc<S> {
        &self.shared
    }

    /// Queues a command and wakes the task; fails once the task stopped.
    pub async fn send(&self, command: C) -> Result<(), TunnelError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| TunnelError::Closed)?;
        self.shared.wake();
        Ok(())
    }

    /// Sends the command `ask` builds around a reply channel and waits for
    /// the reply; fails once the task stopped.
    pub async fn ask<T>(
        &self,
        ask: impl FnOnce(oneshot::Sender<T>) -> C,
    ) -> Result<T, TunnelError> {
        let (reply, answer) = oneshot::channel();
        self.send(ask(reply)).await?;
        answer.await.map_err(|_| TunnelError::Closed)
    }
}

/// A running task and its mailbox. Dropping it aborts the task;
/// [`Worker::shutdown`] stops it gracefully.
pub(crate) struct Worker<C, S> {
    mailbox: Mailbox<C, S>,
    task: Option<JoinHandle<()>>,
}

impl<C: Stop, S: Wake> Worker<C, S> {
    /// Runs `task` (which reads the commands sent to `mailbox`) on the
    /// current Tokio runtime.
    pub fn spawn(mailbox: Mailbox<C, S>, task: impl Future<Output = ()> + Send + 'static) -> Self {
        Worker {
            mailbox,
            task: Some(tokio::spawn(task)),
        }
    }

    /// The mailbox, to clone into handles.
    pub fn mailbox(&self) -> &Mailbox<C, S> {
        &self.mailbox
    }

    /// Asks the task to stop and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.mailbox.commands.send(C::stop()).await;
        self.mailbox.shared.wake();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl<C, S> Drop for Worker<C, S> {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
