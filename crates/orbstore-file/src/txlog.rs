//! The transaction log: one commit marker per committed transaction.
//!
//! A transaction's records go to the logs of the collections it wrote, tagged with its id, and
//! are fsynced; then its marker is appended here and fsynced. That is the commit point: on
//! replay, tagged records whose marker is missing are ignored, so a transaction lands whole or
//! not at all, across collections. The markers are dropped once no collection log holds tagged
//! records any more (after compaction).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::Path;

use crate::backend::append_durable;
use crate::log::{open_append, read_log_lines};

/// The transaction log's file name.
pub(crate) const TXLOG_FILE: &str = "_orbstore.txlog";

/// The open transaction log.
#[derive(Debug)]
pub(crate) struct TxLog {
    file: File,
    next_id: u64,
}

impl TxLog {
    /// Opens (creating) the log and returns the committed transaction ids.
    pub(crate) fn open(path: &Path, warnings: &mut Vec<String>) -> io::Result<(TxLog, BTreeSet<u64>)> {
        let (lines, torn) = read_log_lines(path)?;
        let committed: BTreeSet<u64> =
            lines.iter().filter_map(|l| l.get("commit").and_then(|v| v.as_u64())).collect();
        if torn > 0 {
            warnings.push(format!("{}: a torn last marker was dropped", path.display()));
            let valid: Vec<u8> = committed.iter().flat_map(|id| marker(*id)).collect();
            std::fs::write(path, valid)?;
        }
        let next_id = committed.iter().next_back().map_or(1, |m| m + 1);
        Ok((TxLog { file: open_append(path)?, next_id }, committed))
    }

    /// A fresh transaction id (ids only grow, also across restarts).
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Appends and fsyncs the commit marker of `id`: the transaction's commit point.
    pub(crate) fn commit(&mut self, id: u64) -> io::Result<()> {
        append_durable(&mut self.file, &marker(id))
    }

    /// Drops every marker (no log holds transaction records any more).
    pub(crate) fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()
    }
}

fn marker(id: u64) -> Vec<u8> {
    let json = format!("{{\"commit\":{id}}}");
    format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes())).into_bytes()
}
