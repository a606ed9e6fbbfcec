//! The ledger: every tap the helper made, for which peer, known by its
//! namespace and interface index, kept in a file so that a restarted
//! helper still knows them.
//!
//! The file is a log of JSON lines, appended to before and after each
//! create and after each delete, and written afresh (to a new file renamed
//! over the old) when the helper starts. It lives under `/run` by default:
//! taps do not outlive a reboot, and `/run` is memory, so an append costs
//! no disk wait, and a line written is kept even if the helper dies the
//! next instant. A line cut short by a crash mid-write is skipped.
//!
//! A create is written down twice: its intent (the peer, the name, the
//! owner and group it gets) before the tap is made, and the tap (its index)
//! once it is. A helper that dies between the two finds the intent when it
//! starts and looks for the tap by name: a tap not yet persistent was
//! removed by the kernel when the helper's file closed; a persistent tap of
//! that name with the intent's owner and group is the one it made.
//!
//! While it runs, the helper watches each namespace's links and forgets a
//! tap as soon as it is removed by anyone else (its VMM may turn
//! persistence off and close it; an operator may delete it or move it
//! away): its slot is the peer's again, and its index, which a device
//! moved in from another namespace can have next, is no longer the peer's.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tap_pool::{LinkInfo, TapName};

/// A network namespace, by the inode of its nsfs file: interface indexes
/// are per namespace.
pub type NsId = u64;

/// One tap the helper made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its namespace.
    pub ns: NsId,
    /// Its interface index.
    pub index: u32,
    /// The peer it was made for.
    pub uid: u32,
    /// The name it was made with.
    pub name: TapName,
    /// The token of the create that made it.
    pub token: u64,
}

/// A create under way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Its namespace.
    pub ns: NsId,
    /// The peer.
    pub uid: u32,
    /// The name.
    pub name: TapName,
    /// The create's token.
    pub token: u64,
    /// The owner the tap gets.
    pub owner: Option<u32>,
    /// The group the tap gets.
    pub group: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    Intent(Intent),
    Made(Entry),
    /// A create that made nothing.
    Dropped {
        ns: NsId,
        uid: u32,
        name: TapName,
    },
    /// A tap deleted, or found gone.
    Gone {
        ns: NsId,
        index: u32,
    },
}

/// The ledger, in memory and in its file.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: File,
    taps: HashMap<(NsId, u32), Entry>,
    /// By namespace, peer and name: two peers' rules may allow the same
    /// name in the same namespace.
    intents: HashMap<(NsId, u32, TapName), Intent>,
}

impl Ledger {
    /// Reads the ledger in `dir` (made, mode 0700, if missing). Call
    /// [`Ledger::reconcile`] for each namespace before serving.
    ///
    /// # Errors
    /// The directory or file cannot be made, opened or read.
    pub fn open(dir: &Path) -> std::io::Result<Ledger> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let path = dir.join("ledger");
        let mut taps = HashMap::new();
        let mut intents = HashMap::new();
        match File::open(&path) {
            Ok(file) => {
                for line in BufReader::new(file).split(b'\n') {
                    let line = line?;
                    // A line cut short by a crash is skipped.
                    let Ok(record) = serde_json::from_slice::<Record>(&line) else {
                        continue;
                    };
                    match record {
                        Record::Intent(intent) => {
                            intents.insert((intent.ns, intent.uid, intent.name), intent);
                        }
                        Record::Made(entry) => {
                            intents.remove(&(entry.ns, entry.uid, entry.name));
                            taps.insert((entry.ns, entry.index), entry);
                        }
                        Record::Dropped { ns, uid, name } => {
                            intents.remove(&(ns, uid, name));
                        }
                        Record::Gone { ns, index } => {
                            taps.remove(&(ns, index));
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = append(&path)?;
        Ok(Ledger {
            path,
            file,
            taps,
            intents,
        })
    }

    /// Brings what the ledger holds for namespace `ns` in line with its
    /// tun/tap devices, `taps` (a fresh listing): a tap no longer there,
    /// no longer a tun/tap device, or there under another name is
    /// forgotten; a create cut short is settled (see the module's docs).
    /// Returns how many were forgotten and how many creates were found
    /// made.
    ///
    /// The name is checked because a namespace is known by its nsfs inode,
    /// which the kernel gives to the next namespace made once this one is
    /// gone: a namespace deleted and made again while the helper was
    /// stopped has the same id, and its devices the same small indexes.
    /// Only a root operator can rename a tap; one renamed while the helper
    /// was stopped is the operator's from then on.
    pub fn reconcile(&mut self, ns: NsId, taps: &[LinkInfo]) -> (usize, usize) {
        let before = self.taps.len();
        self.taps
            .retain(|&(n, _), entry| n != ns || still_there(entry, taps));
        let forgotten = before - self.taps.len();
        let mut found = 0;
        let cut: Vec<Intent> = self
            .intents
            .values()
            .filter(|intent| intent.ns == ns)
            .cloned()
            .collect();
        for intent in cut {
            self.intents.remove(&(ns, intent.uid, intent.name));
            let made = taps.iter().find(|link| {
                link.name == intent.name
                    && link.persistent
                    && link.owner == intent.owner
                    && link.group == intent.group
                    && !self.taps.contains_key(&(ns, link.index))
            });
            if let Some(link) = made {
                found += 1;
                self.taps.insert(
                    (ns, link.index),
                    Entry {
                        ns,
                        index: link.index,
                        uid: intent.uid,
                        name: intent.name,
                        token: intent.token,
                    },
                );
            }
        }
        (forgotten, found)
    }

    /// Forgets (and writes down as gone) the taps of namespace `ns` that
    /// are not among `taps`, a fresh listing of its tun/tap devices, at
    /// their index under their name (as [`reconcile`](Self::reconcile)).
    pub fn forget_missing(&mut self, ns: NsId, taps: &[LinkInfo]) {
        let missing: Vec<u32> = self
            .taps
            .iter()
            .filter(|&(&(n, _), entry)| n == ns && !still_there(entry, taps))
            .map(|(&(_, index), _)| index)
            .collect();
        for index in missing {
            self.gone(ns, index);
        }
    }

    /// Forgets everything of namespaces other than `live`: the helper can
    /// no longer reach them (gone, or no longer in the policy).
    pub fn keep_only(&mut self, live: &[NsId]) {
        let before = self.taps.len();
        self.taps.retain(|&(ns, _), _| live.contains(&ns));
        if self.taps.len() < before {
            tracing::warn!(
                forgotten = before - self.taps.len(),
                "taps of namespaces the policy no longer names are forgotten: no peer can delete them through the helper now (tap-pool gc as root can)"
            );
        }
        self.intents.retain(|&(ns, ..), _| live.contains(&ns));
    }

    /// Writes the ledger afresh: a new file with one line per tap, renamed
    /// over the old.
    ///
    /// # Errors
    /// The new file cannot be written or renamed.
    pub fn compact(&mut self) -> std::io::Result<()> {
        let fresh = self.path.with_extension("new");
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&fresh)?;
        let mut text = Vec::new();
        for entry in self.taps.values() {
            line(&mut text, &Record::Made(entry.clone()));
        }
        for intent in self.intents.values() {
            line(&mut text, &Record::Intent(intent.clone()));
        }
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&fresh, &self.path)?;
        self.file = append(&self.path)?;
        Ok(())
    }

    /// Writes down a create about to be made.
    ///
    /// # Errors
    /// The line cannot be written: the create must not go ahead.
    pub fn intend(&mut self, intent: Intent) -> std::io::Result<()> {
        self.write(&Record::Intent(intent.clone()))?;
        self.intents
            .insert((intent.ns, intent.uid, intent.name), intent);
        Ok(())
    }

    /// Writes down the tap a create made.
    ///
    /// # Errors
    /// The line cannot be written: the tap must be deleted again.
    pub fn made(&mut self, entry: Entry) -> std::io::Result<()> {
        self.intents.remove(&(entry.ns, entry.uid, entry.name));
        self.taps.insert((entry.ns, entry.index), entry.clone());
        self.write(&Record::Made(entry))
    }

    /// Writes down a create that made nothing.
    pub fn dropped(&mut self, ns: NsId, uid: u32, name: TapName) {
        self.intents.remove(&(ns, uid, name));
        if let Err(e) = self.write(&Record::Dropped { ns, uid, name }) {
            tracing::warn!(error = %e, "cannot write to the ledger");
        }
    }

    /// Writes down a tap deleted or found gone.
    pub fn gone(&mut self, ns: NsId, index: u32) {
        if self.taps.remove(&(ns, index)).is_some()
            && let Err(e) = self.write(&Record::Gone { ns, index })
        {
            tracing::warn!(error = %e, "cannot write to the ledger");
        }
    }

    /// The tap at `index` in `ns`, if the helper made it for `uid`.
    pub fn get(&self, ns: NsId, uid: u32, index: u32) -> Option<&Entry> {
        self.taps.get(&(ns, index)).filter(|entry| entry.uid == uid)
    }

    /// The tap the helper made for `uid` in `ns` with the name `name`.
    pub fn by_name(&self, ns: NsId, uid: u32, name: TapName) -> Option<&Entry> {
        self.taps
            .values()
            .find(|entry| entry.ns == ns && entry.uid == uid && entry.name == name)
    }

    /// How many taps `uid` has, made or being made.
    pub fn count(&self, uid: u32) -> usize {
        self.taps.values().filter(|entry| entry.uid == uid).count()
            + self
                .intents
                .values()
                .filter(|intent| intent.uid == uid)
                .count()
    }

    /// Every tap, for tests and logs.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.taps.values()
    }

    fn write(&mut self, record: &Record) -> std::io::Result<()> {
        let mut text = Vec::new();
        line(&mut text, record);
        // One write of one line, appended: whole or, if the helper dies
        // inside it, cut short and skipped on reading.
        self.file.write_all(&text)
    }
}

fn line(text: &mut Vec<u8>, record: &Record) {
    if serde_json::to_writer(&mut *text, record).is_ok() {
        text.push(b'\n');
    }
}

/// Whether `entry`'s tap is among `taps`, at its index under its name.
fn still_there(entry: &Entry, taps: &[LinkInfo]) -> bool {
    taps.iter()
        .any(|link| link.index == entry.index && link.name == entry.name)
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TapName {
        TapName::new(s).unwrap()
    }

    fn entry(index: u32, uid: u32, n: &str) -> Entry {
        Entry {
            ns: 1,
            index,
            uid,
            name: name(n),
            token: 9,
        }
    }

    fn link(index: u32, n: &str, owner: Option<u32>) -> LinkInfo {
        LinkInfo {
            name: name(n),
            index,
            kind: tap_pool::TunKind::Tap,
            persistent: true,
            owner,
            group: None,
            master: None,
            mtu: 1500,
            up: true,
            in_use: false,
            device_group: 0,
            mac: [2, 0, 0, 0, 0, 1],
            vnet_hdr: true,
            multi_queue: false,
            queues: None,
            link_type: libc::ARPHRD_ETHER,
        }
    }

    #[test]
    fn a_tap_at_its_index_under_another_name_is_not_the_peers_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.made(entry(5, 1000, "tp-0")).unwrap();
        ledger.made(entry(6, 1000, "tp-1")).unwrap();
        // The namespace was made again: index 5 is an operator's device.
        let (forgotten, _) =
            ledger.reconcile(1, &[link(5, "op-0", None), link(6, "tp-1", Some(1000))]);
        assert_eq!(forgotten, 1);
        assert_eq!(ledger.get(1, 1000, 5), None);
        assert!(ledger.get(1, 1000, 6).is_some());
    }

    #[test]
    fn a_create_cut_short_is_found_by_name_owner_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let intent = |uid, n: &str| Intent {
            ns: 1,
            uid,
            name: name(n),
            token: 3,
            owner: Some(uid),
            group: None,
        };
        ledger.intend(intent(1000, "tp-0")).unwrap();
        ledger.intend(intent(1001, "tp-0")).unwrap();
        ledger.intend(intent(1000, "tp-1")).unwrap();
        drop(ledger);
        let mut ledger = Ledger::open(dir.path()).unwrap();
        // tp-0 was made for 1001 (its owner says); tp-1 was never made.
        let (_, found) = ledger.reconcile(1, &[link(7, "tp-0", Some(1001))]);
        assert_eq!(found, 1);
        assert_eq!(ledger.get(1, 1000, 7), None);
        assert_eq!(ledger.get(1, 1001, 7).map(|e| e.name), Some(name("tp-0")));
        assert_eq!(ledger.count(1000), 0, "no intent left");
    }

    #[test]
    fn a_reopened_ledger_knows_what_was_made_and_not_what_went() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.made(entry(5, 1000, "tp-0")).unwrap();
        ledger.made(entry(6, 1000, "tp-1")).unwrap();
        ledger.gone(1, 5);
        drop(ledger);
        // A line cut short by a crash.
        let mut file = append(&dir.path().join("ledger")).unwrap();
        file.write_all(b"{\"made\":{\"ns\":1,\"ind").unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.get(1, 1000, 5), None);
        assert_eq!(ledger.get(1, 1000, 6), Some(&entry(6, 1000, "tp-1")));
        assert_eq!(ledger.get(1, 1001, 6), None, "another peer's");
        assert_eq!(ledger.get(2, 1000, 6), None, "another namespace's");
    }
}
