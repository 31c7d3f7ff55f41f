//! The transaction log: one commit marker per committed transaction.
//!
//! A transaction's records go to the logs of the collections it wrote, tagged with its id, and
//! are fsynced; then its marker is appended here and fsynced. That is the commit point: on
//! replay, tagged records whose marker is missing are ignored, so a transaction lands whole or
//! not at all, across collections. The markers are dropped once no collection log holds tagged
//! records any more (after compaction).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use orbstore_core::{Error, Result};
use serde::Deserialize;

use crate::backend::append_durable;
use crate::log::{open_append, read_log, Replay};
use crate::recovery;

/// The transaction log's file name.
pub(crate) const TXLOG_FILE: &str = "_orbstore.txlog";

/// A marker as read.
#[derive(Deserialize)]
struct Marker {
    commit: u64,
}

/// The open transaction log.
#[derive(Debug)]
pub(crate) struct TxLog {
    file: File,
    next_id: u64,
}

impl TxLog {
    /// Reads the log and returns the committed transaction ids. Damage is handled as in a
    /// collection's log (`recovery::check_log`): a copy is kept, strict mode refuses corruption.
    pub(crate) fn read(path: &Path, strict: bool, warnings: &mut Vec<String>) -> Result<BTreeSet<u64>> {
        let replay: Replay<Marker> =
            read_log(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let committed: BTreeSet<u64> = replay.records.iter().map(|m| m.commit).collect();
        if recovery::check_log(path, &replay, strict, warnings)? {
            // Rewritten with the readable markers only, atomically: a crash here must not lose
            // the markers of committed transactions.
            let valid: Vec<u8> = committed.iter().flat_map(|id| marker(*id)).collect();
            recovery::replace_file(path, &valid)
                .map_err(|e| Error::io(format!("cannot rewrite {}", path.display()), e))?;
        }
        Ok(committed)
    }

    /// Opens (creating) the log for appending; ids continue after the committed ones.
    pub(crate) fn open(path: &Path, committed: &BTreeSet<u64>) -> Result<TxLog> {
        let next_id = committed.iter().next_back().map_or(1, |m| m + 1);
        let file = open_append(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        Ok(TxLog { file, next_id })
    }

    /// A fresh transaction id (ids only grow, also across restarts).
    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Appends and fsyncs the commit marker of `id`: the transaction's commit point.
    pub(crate) fn commit(&mut self, id: u64) -> std::io::Result<()> {
        append_durable(&mut self.file, &marker(id))
    }

    /// Drops every marker (no log holds transaction records any more).
    pub(crate) fn truncate(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()
    }
}

fn marker(id: u64) -> Vec<u8> {
    let json = format!("{{\"commit\":{id}}}");
    format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes())).into_bytes()
}
