//! A TCP proxy for network fault tests, between the client and a server on this machine. It
//! listens on a free loopback port and forwards every connection to the target, in one of these
//! modes, switchable at any time and applying to open connections too:
//! - `Pass`: bytes flow both ways;
//! - `Cut`: every open connection is closed, and new ones are accepted and closed at once (a
//!   server gone, a firewall resetting);
//! - `Stall`: connections are accepted, but nothing is forwarded either way (a server or network
//!   that went silent: nothing fails, nothing answers). Bytes held back flow again on `Pass`.
//! - `Slow(d)`: like `Pass`, each chunk delayed by `d`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward.
    Pass,
    /// Close every connection.
    Cut,
    /// Forward nothing, close nothing.
    Stall,
    /// Forward, each chunk after a delay.
    Slow(Duration),
}

/// Switches a proxy's mode.
#[derive(Clone)]
pub struct Switch(Arc<watch::Sender<Mode>>);

impl Switch {
    /// Switches the mode, for open connections too.
    pub fn set(&self, mode: Mode) {
        self.0.send_replace(mode);
    }
}

/// A running proxy; dropping it stops accepting and closes every connection.
pub struct Proxy {
    addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        // Connections end when they see the cut.
        self.mode.send_replace(Mode::Cut);
    }
}

impl Proxy {
    /// Starts a proxy to `target` in `Pass` mode.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(watch::channel(Mode::Pass).0);
        let accepted = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(listener, target, mode.subscribe(), accepted.clone()));
        Proxy { addr, mode, accepted, task }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode, for open connections too.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// A handle that switches the mode from another task.
    pub fn switch(&self) -> Switch {
        Switch(self.mode.clone())
    }

    /// The mode now.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    mode: watch::Receiver<Mode>,
    accepted: Arc<AtomicU64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        accepted.fetch_add(1, Ordering::Relaxed);
        let mode = mode.clone();
        tokio::spawn(async move {
            if *mode.borrow() == Mode::Cut {
                return; // dropped: closed at once
            }
            // The server connection is opened even when stalled: a silent network still lets
            // the client's connect succeed at the proxy.
            let Ok(server) = TcpStream::connect(target).await else { return };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            // Either direction ending (EOF, error, cut) ends the connection.
            tokio::select! {
                _ = pipe(cr, sw, mode.clone()) => {}
                _ = pipe(sr, cw, mode.clone()) => {}
            }
        });
    }
}

/// Waits until bytes may flow; `false` when the connection must be closed (cut, or the proxy
/// is gone).
async fn may_flow(mode: &mut watch::Receiver<Mode>) -> bool {
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Pass | Mode::Slow(_) => return true,
            Mode::Cut => return false,
            Mode::Stall => {
                if mode.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !may_flow(&mut mode).await {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            // A change of mode (to cut or stall) is looked at before reading more.
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let now = *mode.borrow();
        if let Mode::Slow(d) = now {
            tokio::time::sleep(d).await;
        }
        // Bytes read before a stall are held until the mode allows them through.
        if !may_flow(&mut mode).await {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
