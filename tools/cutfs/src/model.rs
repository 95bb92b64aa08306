//! The durability model of cutfs, without FUSE: a directory tree whose every change is live at
//! once but durable only when the program asks for it, as on a disk whose cache dies with the
//! power (the model LazyFS uses in Jepsen-style tests).
//!
//! What survives a [`Model::cut`]:
//! - a file's **contents and size** as of its last `fsync`/`fdatasync` (both are the same here:
//!   the size always goes with the data); a file never synced is empty;
//! - a directory's **names** (created, renamed in or out, unlinked) as of its last `fsync` of the
//!   directory itself. Each directory is durable on its own: a new file whose data was synced is
//!   still gone if its directory was not; a directory made durable inside a parent that was not
//!   is gone with everything in it; a rename between two directories of which only the target
//!   was synced leaves the file under both names.
//!
//! Storage, under `<state>/.cutfs/` while mounted: `base/` is the tree as it was at mount (every
//! byte of it durable; never written), `live/<ino>` a file's current contents once written
//! (copied from `base/` on the first write), `durable/<ino>` its contents as of its last sync
//! (only the ranges written since are copied in). [`Model::finish`] builds the new
//! `<state>/tree/` from the durable view (after a cut) or the live one (a clean unmount, which
//! on a real disk syncs everything) and removes `.cutfs/`.
//!
//! This module must never make anything durable that the program did not sync, never lose
//! anything that it did, and never write to `base/` (files there may be hard links of one
//! another). After a cut every operation fails with EIO, like a dead disk. Not modelled (they
//! fail with EPERM or are ignored): symlinks, hard links of directories, device nodes, sockets,
//! extended attributes; permissions and times are kept as they are live.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub type Ino = u64;
/// The root directory's inode number (FUSE's).
pub const ROOT: Ino = 1;

/// Where the tree lives between mounts, under the state dir.
pub const TREE: &str = "tree";
/// Working storage while mounted, under the state dir.
pub const WORK: &str = ".cutfs";

#[derive(Debug)]
pub enum Error {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    Invalid,
    NotSupported,
    /// The power was cut: the disk answers nothing any more.
    Dead,
    Io(io::Error),
}

impl Error {
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::Exists => libc::EEXIST,
            Error::NotDir => libc::ENOTDIR,
            Error::IsDir => libc::EISDIR,
            Error::NotEmpty => libc::ENOTEMPTY,
            Error::Invalid => libc::EINVAL,
            Error::NotSupported => libc::EPERM,
            Error::Dead => libc::EIO,
            Error::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            other => write!(f, "{}", io::Error::from_raw_os_error(other.errno())),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

/// Byte ranges `[start, end)`, merged when they overlap or touch.
#[derive(Debug, Default)]
struct Ranges(BTreeMap<u64, u64>);

impl Ranges {
    fn add(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        let merged: Vec<(u64, u64)> = self
            .0
            .range(..=e)
            .rev()
            .take_while(|(_, &re)| re >= s)
            .map(|(&a, &b)| (a, b))
            .collect();
        for (a, b) in merged {
            self.0.remove(&a);
            s = s.min(a);
            e = e.max(b);
        }
        self.0.insert(s, e);
    }
}

/// Where a file's current contents are.
#[derive(Debug)]
enum Live {
    /// Unchanged since mount: the file in `base/`.
    Base(PathBuf),
    /// `live/<ino>`.
    Obj,
}

/// Where a file's durable contents are.
#[derive(Debug)]
enum Durable {
    /// Never synced: a file of size 0.
    Empty,
    /// As at mount: the file in `base/`.
    Base(PathBuf),
    /// `durable/<ino>`.
    Obj,
}

#[derive(Debug)]
struct FileNode {
    live: Live,
    durable: Durable,
    len: u64,
    /// The smallest size the file had since its last sync: everything from here to `len` is new.
    min_len: u64,
    /// Ranges below `min_len` written since the last sync.
    dirty: Ranges,
    /// An open handle on the live contents, kept while the file is open.
    handle: Option<File>,
    handle_writable: bool,
    opens: u32,
}

#[derive(Debug)]
struct DirNode {
    live: BTreeMap<OsString, Ino>,
    durable: BTreeMap<OsString, Ino>,
    parent: Ino,
}

#[derive(Debug)]
enum Body {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug)]
struct Node {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    /// Live names (a directory's own `.` and its entry in its parent count as in Unix).
    nlink: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

pub struct Model {
    state: PathBuf,
    work: PathBuf,
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    cut: bool,
}

fn copy_range(src: &File, dst: &File, start: u64, end: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = start;
    while pos < end {
        let want = ((end - pos) as usize).min(buf.len());
        let n = src.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            // Past the live file's end (it was never written there): zeros, as a hole reads.
            buf[..want].fill(0);
            dst.write_all_at(&buf[..want], pos)?;
            pos += want as u64;
            continue;
        }
        dst.write_all_at(&buf[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

impl Model {
    /// Takes `<state>/tree/` (created empty if absent) as the durable state at mount.
    pub fn load(state: &Path) -> Result<Model> {
        let tree = state.join(TREE);
        let work = state.join(WORK);
        if work.exists() {
            return Err(Error::Io(io::Error::other(format!(
                "{} exists: a cutfs did not exit cleanly there (or is still mounted); its state \
                 is lost. Unmount it, then remove {} and start from a fresh state dir",
                work.display(),
                work.display()
            ))));
        }
        std::fs::create_dir_all(&tree)?;
        std::fs::create_dir(&work)?;
        std::fs::rename(&tree, work.join("base"))?;
        std::fs::create_dir(work.join("live"))?;
        std::fs::create_dir(work.join("durable"))?;
        let mut m = Model {
            state: state.to_owned(),
            work: work.clone(),
            nodes: HashMap::new(),
            next_ino: ROOT + 1,
            cut: false,
        };
        let base = work.join("base");
        let meta = std::fs::metadata(&base)?;
        m.nodes.insert(ROOT, m.dir_node(ROOT, &meta));
        m.load_dir(ROOT, &base, &mut HashMap::new())?;
        Ok(m)
    }

    fn dir_node(&self, parent: Ino, meta: &std::fs::Metadata) -> Node {
        let now = SystemTime::now();
        Node {
            body: Body::Dir(DirNode {
                live: BTreeMap::new(),
                durable: BTreeMap::new(),
                parent,
            }),
            perm: (meta.mode() & 0o7777) as u16,
            uid: meta.uid(),
            gid: meta.gid(),
            nlink: 2,
            atime: now,
            mtime: meta.modified().unwrap_or(now),
            ctime: now,
        }
    }

    fn load_dir(
        &mut self,
        ino: Ino,
        path: &Path,
        links: &mut HashMap<(u64, u64), Ino>,
    ) -> Result<()> {
        for e in std::fs::read_dir(path)? {
            let e = e?;
            let meta = std::fs::symlink_metadata(e.path())?;
            if meta.is_file() && meta.nlink() > 1 {
                // A hard link of a file already loaded: one more name for the same node.
                if let Some(&same) = links.get(&(meta.dev(), meta.ino())) {
                    self.node_mut(same)?.nlink += 1;
                    let dir = self.dir_mut(ino)?;
                    dir.live.insert(e.file_name(), same);
                    dir.durable.insert(e.file_name(), same);
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), self.next_ino);
            }
            let child = self.next_ino;
            self.next_ino += 1;
            if meta.is_dir() {
                let node = self.dir_node(ino, &meta);
                self.nodes.insert(child, node);
                self.load_dir(child, &e.path(), links)?;
                self.node_mut(ino)?.nlink += 1;
            } else if meta.is_file() {
                let now = SystemTime::now();
                self.nodes.insert(
                    child,
                    Node {
                        body: Body::File(FileNode {
                            live: Live::Base(e.path()),
                            durable: Durable::Base(e.path()),
                            len: meta.len(),
                            min_len: meta.len(),
                            dirty: Ranges::default(),
                            handle: None,
                            handle_writable: false,
                            opens: 0,
                        }),
                        perm: (meta.mode() & 0o7777) as u16,
                        uid: meta.uid(),
                        gid: meta.gid(),
                        nlink: 1,
                        atime: now,
                        mtime: meta.modified().unwrap_or(now),
                        ctime: now,
                    },
                );
            } else {
                return Err(Error::Io(io::Error::other(format!(
                    "{}: only directories and regular files are supported",
                    e.path().display()
                ))));
            }
            let dir = self.dir_mut(ino)?;
            dir.live.insert(e.file_name(), child);
            dir.durable.insert(e.file_name(), child);
        }
        Ok(())
    }

    fn alive(&self) -> Result<()> {
        if self.cut {
            Err(Error::Dead)
        } else {
            Ok(())
        }
    }

    fn node(&self, ino: Ino) -> Result<&Node> {
        self.nodes.get(&ino).ok_or(Error::NotFound)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Error::NotFound)
    }

    fn dir(&self, ino: Ino) -> Result<&DirNode> {
        match &self.node(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Error::NotDir),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut DirNode> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Error::NotDir),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut FileNode> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Error::IsDir),
        }
    }

    fn live_path(&self, ino: Ino) -> PathBuf {
        self.work.join("live").join(ino.to_string())
    }

    fn durable_path(&self, ino: Ino) -> PathBuf {
        self.work.join("durable").join(ino.to_string())
    }

    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// The power is cut: from now on every operation fails with EIO, and [`Model::finish`]
    /// keeps only what was durable.
    pub fn cut(&mut self) {
        self.cut = true;
        for n in self.nodes.values_mut() {
            if let Body::File(f) = &mut n.body {
                f.handle = None;
            }
        }
    }

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino> {
        self.alive()?;
        self.dir(parent)?
            .live
            .get(name)
            .copied()
            .ok_or(Error::NotFound)
    }

    pub fn attr(&self, ino: Ino) -> Result<Attr> {
        self.alive()?;
        let n = self.node(ino)?;
        let (kind, size) = match &n.body {
            Body::File(f) => (Kind::File, f.len),
            Body::Dir(d) => (Kind::Dir, d.live.len() as u64),
        };
        Ok(Attr {
            ino,
            kind,
            size,
            perm: n.perm,
            nlink: n.nlink,
            uid: n.uid,
            gid: n.gid,
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
        })
    }

    fn new_name(&mut self, parent: Ino, name: &OsStr, node: Node) -> Result<Ino> {
        self.alive()?;
        if name.is_empty() || name == "." || name == ".." || name.len() > 255 {
            return Err(Error::Invalid);
        }
        if self.dir(parent)?.live.contains_key(name) {
            return Err(Error::Exists);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let is_dir = matches!(node.body, Body::Dir(_));
        self.nodes.insert(ino, node);
        let now = SystemTime::now();
        let p = self.node_mut(parent)?;
        p.mtime = now;
        p.ctime = now;
        if is_dir {
            p.nlink += 1;
        }
        self.dir_mut(parent)?.live.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// A new empty regular file (not durable, nor is its name, until synced).
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Result<Ino> {
        self.alive()?;
        self.dir(parent)?;
        let ino = self.next_ino;
        File::create(self.live_path(ino))?;
        let now = SystemTime::now();
        let got = self.new_name(
            parent,
            name,
            Node {
                body: Body::File(FileNode {
                    live: Live::Obj,
                    durable: Durable::Empty,
                    len: 0,
                    min_len: 0,
                    dirty: Ranges::default(),
                    handle: None,
                    handle_writable: false,
                    opens: 0,
                }),
                perm,
                uid,
                gid,
                nlink: 1,
                atime: now,
                mtime: now,
                ctime: now,
            },
        );
        if got.is_err() {
            let _ = std::fs::remove_file(self.live_path(ino));
        }
        got
    }

    pub fn mkdir(
        &mut self,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Result<Ino> {
        let now = SystemTime::now();
        self.new_name(
            parent,
            name,
            Node {
                body: Body::Dir(DirNode {
                    live: BTreeMap::new(),
                    durable: BTreeMap::new(),
                    parent,
                }),
                perm,
                uid,
                gid,
                nlink: 2,
                atime: now,
                mtime: now,
                ctime: now,
            },
        )
    }

    fn remove_name(&mut self, parent: Ino, name: &OsStr, want_dir: bool) -> Result<()> {
        self.alive()?;
        let ino = self.lookup(parent, name)?;
        match (&self.node(ino)?.body, want_dir) {
            (Body::Dir(d), true) if !d.live.is_empty() => return Err(Error::NotEmpty),
            (Body::Dir(_), false) => return Err(Error::IsDir),
            (Body::File(_), true) => return Err(Error::NotDir),
            _ => {}
        }
        self.dir_mut(parent)?.live.remove(name);
        let now = SystemTime::now();
        let p = self.node_mut(parent)?;
        p.mtime = now;
        p.ctime = now;
        if want_dir {
            p.nlink -= 1;
        }
        let n = self.node_mut(ino)?;
        n.nlink = if want_dir { 0 } else { n.nlink - 1 };
        n.ctime = now;
        Ok(())
    }

    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<()> {
        self.remove_name(parent, name, false)
    }

    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<()> {
        self.remove_name(parent, name, true)
    }

    /// link(2): one more name for a file (durable as its directory is).
    pub fn link(&mut self, ino: Ino, newparent: Ino, newname: &OsStr) -> Result<()> {
        self.alive()?;
        if matches!(self.node(ino)?.body, Body::Dir(_)) {
            return Err(Error::NotSupported);
        }
        if newname.is_empty() || newname == "." || newname == ".." || newname.len() > 255 {
            return Err(Error::Invalid);
        }
        if self.dir(newparent)?.live.contains_key(newname) {
            return Err(Error::Exists);
        }
        self.dir_mut(newparent)?
            .live
            .insert(newname.to_owned(), ino);
        let now = SystemTime::now();
        let n = self.node_mut(ino)?;
        n.nlink += 1;
        n.ctime = now;
        let p = self.node_mut(newparent)?;
        p.mtime = now;
        p.ctime = now;
        Ok(())
    }

    /// rename(2), replacing the target unless `noreplace`. Durable only as far as each of the
    /// two directories is synced afterwards.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
        noreplace: bool,
    ) -> Result<()> {
        self.alive()?;
        let ino = self.lookup(parent, name)?;
        self.dir(newparent)?;
        if newname.is_empty() || newname == "." || newname == ".." || newname.len() > 255 {
            return Err(Error::Invalid);
        }
        let src_is_dir = matches!(self.node(ino)?.body, Body::Dir(_));
        if src_is_dir {
            // A directory cannot move into its own subtree.
            let mut up = newparent;
            loop {
                if up == ino {
                    return Err(Error::Invalid);
                }
                if up == ROOT {
                    break;
                }
                up = self.dir(up)?.parent;
            }
        }
        if let Some(&target) = self.dir(newparent)?.live.get(newname) {
            if target == ino {
                return Ok(());
            }
            if noreplace {
                return Err(Error::Exists);
            }
            match (&self.node(target)?.body, src_is_dir) {
                (Body::Dir(d), true) if !d.live.is_empty() => return Err(Error::NotEmpty),
                (Body::Dir(_), false) => return Err(Error::IsDir),
                (Body::File(_), true) => return Err(Error::NotDir),
                _ => {}
            }
            self.remove_name(newparent, newname, src_is_dir)?;
        }
        self.dir_mut(parent)?.live.remove(name);
        self.dir_mut(newparent)?
            .live
            .insert(newname.to_owned(), ino);
        let now = SystemTime::now();
        if src_is_dir {
            self.dir_mut(ino)?.parent = newparent;
            self.node_mut(parent)?.nlink -= 1;
            self.node_mut(newparent)?.nlink += 1;
        }
        for p in [parent, newparent] {
            let p = self.node_mut(p)?;
            p.mtime = now;
            p.ctime = now;
        }
        self.node_mut(ino)?.ctime = now;
        Ok(())
    }

    /// The live entries of a directory, `.` and `..` first.
    pub fn readdir(&self, ino: Ino) -> Result<Vec<(Ino, Kind, OsString)>> {
        self.alive()?;
        let d = self.dir(ino)?;
        let mut out = vec![
            (ino, Kind::Dir, OsString::from(".")),
            (d.parent, Kind::Dir, OsString::from("..")),
        ];
        for (name, &child) in &d.live {
            let kind = match self.node(child)?.body {
                Body::File(_) => Kind::File,
                Body::Dir(_) => Kind::Dir,
            };
            out.push((child, kind, name.clone()));
        }
        Ok(out)
    }

    /// A file was opened: its handle is kept until the last [`Model::release`].
    pub fn open(&mut self, ino: Ino) -> Result<()> {
        self.alive()?;
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => f.opens += 1,
            Body::Dir(_) => {}
        }
        Ok(())
    }

    pub fn release(&mut self, ino: Ino) {
        if let Ok(Body::File(f)) = self.node_mut(ino).map(|n| &mut n.body) {
            f.opens = f.opens.saturating_sub(1);
            if f.opens == 0 {
                f.handle = None;
            }
        }
    }

    /// Runs `op` on the live contents, copying them out of `base/` first when writing.
    fn with_live<T>(
        &mut self,
        ino: Ino,
        write: bool,
        op: impl FnOnce(&File) -> io::Result<T>,
    ) -> Result<T> {
        self.alive()?;
        let live_path = self.live_path(ino);
        let f = self.file_mut(ino)?;
        if write {
            if let Live::Base(base) = &f.live {
                std::fs::copy(base, &live_path)?;
                f.live = Live::Obj;
                f.handle = None;
            }
            if !f.handle_writable {
                f.handle = None;
            }
        }
        let handle = match f.handle.take() {
            Some(h) => h,
            None => match &f.live {
                Live::Base(base) => File::open(base)?,
                Live::Obj => OpenOptions::new().read(true).write(true).open(&live_path)?,
            },
        };
        let result = op(&handle);
        if f.opens > 0 {
            f.handle_writable = matches!(f.live, Live::Obj);
            f.handle = Some(handle);
        }
        Ok(result?)
    }

    pub fn read(&mut self, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>> {
        let len = self.file_mut(ino)?.len;
        let want = (size as u64).min(len.saturating_sub(offset)) as usize;
        let data = self.with_live(ino, false, |h| {
            let mut buf = vec![0u8; want];
            let mut got = 0;
            while got < want {
                let n = h.read_at(&mut buf[got..], offset + got as u64)?;
                if n == 0 {
                    break; // a hole at the end reads as zeros (already there)
                }
                got += n;
            }
            Ok(buf)
        })?;
        self.node_mut(ino)?.atime = SystemTime::now();
        Ok(data)
    }

    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<usize> {
        self.with_live(ino, true, |h| h.write_all_at(data, offset))?;
        let end = offset + data.len() as u64;
        let f = self.file_mut(ino)?;
        f.dirty.add(offset, end);
        f.len = f.len.max(end);
        let now = SystemTime::now();
        let n = self.node_mut(ino)?;
        n.mtime = now;
        n.ctime = now;
        Ok(data.len())
    }

    /// truncate(2) / ftruncate(2).
    pub fn set_len(&mut self, ino: Ino, len: u64) -> Result<()> {
        self.with_live(ino, true, |h| h.set_len(len))?;
        let f = self.file_mut(ino)?;
        f.len = len;
        f.min_len = f.min_len.min(len);
        let now = SystemTime::now();
        let n = self.node_mut(ino)?;
        n.mtime = now;
        n.ctime = now;
        Ok(())
    }

    /// fallocate(2), any mode the host filesystem supports.
    pub fn fallocate(&mut self, ino: Ino, offset: u64, length: u64, mode: i32) -> Result<()> {
        let new_len = self.with_live(ino, true, |h| {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain system call on a descriptor we own; no memory is shared.
            let rc = unsafe {
                libc::fallocate(
                    h.as_raw_fd(),
                    mode,
                    offset as libc::off_t,
                    length as libc::off_t,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(h.metadata()?.len())
        })?;
        let f = self.file_mut(ino)?;
        f.dirty.add(offset, (offset + length).min(new_len));
        f.len = new_len;
        Ok(())
    }

    pub fn setattr(
        &mut self,
        ino: Ino,
        perm: Option<u16>,
        uid: Option<u32>,
        gid: Option<u32>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<()> {
        self.alive()?;
        let n = self.node_mut(ino)?;
        if let Some(p) = perm {
            n.perm = p & 0o7777;
        }
        if let Some(u) = uid {
            n.uid = u;
        }
        if let Some(g) = gid {
            n.gid = g;
        }
        if let Some(t) = atime {
            n.atime = t;
        }
        if let Some(t) = mtime {
            n.mtime = t;
        }
        n.ctime = SystemTime::now();
        Ok(())
    }

    /// fsync(2) or fdatasync(2) of a file (its contents and size become durable) or of a
    /// directory (its names become durable).
    pub fn fsync(&mut self, ino: Ino) -> Result<()> {
        self.alive()?;
        let durable_path = self.durable_path(ino);
        let live_path = self.live_path(ino);
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => {
                d.durable = d.live.clone();
                Ok(())
            }
            Body::File(f) => {
                if let Live::Base(_) = f.live {
                    return Ok(()); // unchanged since mount, and all of it durable
                }
                match &f.durable {
                    Durable::Empty => {
                        File::create(&durable_path)?;
                    }
                    Durable::Base(base) => {
                        std::fs::copy(base, &durable_path)?;
                    }
                    Durable::Obj => {}
                }
                f.durable = Durable::Obj;
                let dst = OpenOptions::new().write(true).open(&durable_path)?;
                let src = File::open(&live_path)?;
                copy_range(&src, &dst, f.min_len, f.len)?;
                for (&s, &e) in &f.dirty.0 {
                    let e = e.min(f.min_len).min(f.len);
                    if s < e {
                        copy_range(&src, &dst, s, e)?;
                    }
                }
                dst.set_len(f.len)?;
                f.dirty = Ranges::default();
                f.min_len = f.len;
                Ok(())
            }
        }
    }

    /// Writes `<state>/tree/`: what survived the cut if there was one, else everything (a clean
    /// unmount syncs). Removes the working storage.
    pub fn finish(&mut self) -> Result<()> {
        let durable = self.cut;
        let new = self.work.join("new");
        std::fs::create_dir(&new)?;
        let mut seen = HashSet::new();
        let mut placed = HashMap::new();
        self.materialize(ROOT, &new, durable, &mut seen, &mut placed)?;
        let tree = self.state.join(TREE);
        std::fs::rename(&new, &tree)?;
        for n in self.nodes.values_mut() {
            if let Body::File(f) = &mut n.body {
                f.handle = None;
            }
        }
        std::fs::remove_dir_all(&self.work)?;
        // Nothing is left to serve: any later request fails like a dead disk.
        self.cut = true;
        Ok(())
    }

    /// Writes directory `ino` into `out`; a file reachable by several names (hard links, or a
    /// rename synced in one directory only) becomes hard links of one file (`placed`).
    fn materialize(
        &self,
        ino: Ino,
        out: &Path,
        durable: bool,
        seen: &mut HashSet<Ino>,
        placed: &mut HashMap<Ino, PathBuf>,
    ) -> Result<()> {
        if !seen.insert(ino) {
            return Ok(()); // a directory reachable twice through unsynced renames: keep one
        }
        let d = self.dir(ino)?;
        let entries = if durable { &d.durable } else { &d.live };
        for (name, &child) in entries {
            let path = out.join(name);
            let n = self.node(child)?;
            match &n.body {
                Body::Dir(_) => {
                    if seen.contains(&child) {
                        continue;
                    }
                    std::fs::create_dir(&path)?;
                    self.materialize(child, &path, durable, seen, placed)?;
                }
                Body::File(_) if placed.contains_key(&child) => {
                    std::fs::hard_link(&placed[&child], &path)?;
                    continue;
                }
                Body::File(f) => {
                    placed.insert(child, path.clone());
                    let src = match (durable, &f.live, &f.durable) {
                        (false, Live::Base(p), _) => Some(p.clone()),
                        (false, Live::Obj, _) => Some(self.live_path(child)),
                        (true, _, Durable::Empty) => None,
                        (true, _, Durable::Base(p)) => Some(p.clone()),
                        (true, _, Durable::Obj) => Some(self.durable_path(child)),
                    };
                    match src {
                        Some(src) => std::fs::hard_link(&src, &path)?,
                        None => drop(File::create(&path)?),
                    }
                }
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(u32::from(n.perm)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model over a fresh state dir; `remount` finishes it and loads what survived.
    struct T {
        dir: tempfile::TempDir,
        m: Model,
    }

    impl T {
        fn new() -> T {
            let dir = tempfile::tempdir().unwrap();
            let m = Model::load(dir.path()).unwrap();
            T { dir, m }
        }
        fn remount(&mut self) {
            self.m.finish().unwrap();
            self.m = Model::load(self.dir.path()).unwrap();
        }
        fn cut(&mut self) {
            self.m.cut();
            assert!(matches!(
                self.m.lookup(ROOT, OsStr::new("x")),
                Err(Error::Dead)
            ));
            self.remount();
        }
        fn tree(&self, rel: &str) -> PathBuf {
            self.dir.path().join(WORK).join("base").join(rel)
        }
        fn content(&mut self, path: &[&str]) -> Option<Vec<u8>> {
            let mut ino = ROOT;
            for p in path {
                ino = self.m.lookup(ino, OsStr::new(p)).ok()?;
            }
            Some(self.m.read(ino, 0, 1 << 20).unwrap())
        }
        fn file(&mut self, parent: Ino, name: &str, data: &[u8]) -> Ino {
            let ino = self
                .m
                .create(parent, OsStr::new(name), 0o644, 0, 0)
                .unwrap();
            self.m.open(ino).unwrap();
            self.m.write(ino, 0, data).unwrap();
            ino
        }
    }

    #[test]
    fn ranges_merge() {
        let mut r = Ranges::default();
        r.add(10, 20);
        r.add(30, 40);
        r.add(20, 30);
        r.add(5, 6);
        r.add(0, 0);
        assert_eq!(r.0.into_iter().collect::<Vec<_>>(), vec![(5, 6), (10, 40)]);
    }

    #[test]
    fn write_without_fsync_then_cut_is_gone() {
        let mut t = T::new();
        let f = t.file(ROOT, "a", b"first");
        t.m.fsync(f).unwrap();
        t.m.fsync(ROOT).unwrap();
        t.m.write(f, 5, b" second").unwrap();
        t.m.write(f, 0, b"FIRST").unwrap();
        assert_eq!(t.content(&["a"]).unwrap(), b"FIRST second");
        t.cut();
        assert_eq!(t.content(&["a"]).unwrap(), b"first");
    }

    #[test]
    fn fsync_then_cut_is_kept() {
        let mut t = T::new();
        let f = t.file(ROOT, "a", b"first");
        t.m.fsync(f).unwrap();
        t.m.fsync(ROOT).unwrap();
        t.m.write(f, 5, b" second").unwrap();
        t.m.fsync(f).unwrap();
        t.m.write(f, 0, b"lost").unwrap();
        t.cut();
        assert_eq!(t.content(&["a"]).unwrap(), b"first second");
        // And the survivor is durable in turn: a second cut keeps it.
        t.cut();
        assert_eq!(t.content(&["a"]).unwrap(), b"first second");
    }

    #[test]
    fn new_file_fsynced_but_directory_not_loses_its_name() {
        let mut t = T::new();
        let f = t.file(ROOT, "a", b"data");
        t.m.fsync(f).unwrap();
        t.cut();
        assert!(t.content(&["a"]).is_none());
    }

    #[test]
    fn directory_fsynced_but_file_not_keeps_an_empty_file() {
        let mut t = T::new();
        t.file(ROOT, "a", b"data");
        t.m.fsync(ROOT).unwrap();
        t.cut();
        assert_eq!(t.content(&["a"]).unwrap(), b"");
    }

    #[test]
    fn unlink_needs_the_directory_synced() {
        let mut t = T::new();
        let f = t.file(ROOT, "a", b"data");
        t.m.fsync(f).unwrap();
        t.m.fsync(ROOT).unwrap();
        t.m.unlink(ROOT, OsStr::new("a")).unwrap();
        t.cut();
        assert_eq!(
            t.content(&["a"]).unwrap(),
            b"data",
            "unlink not synced: back"
        );
        t.m.unlink(ROOT, OsStr::new("a")).unwrap();
        t.m.fsync(ROOT).unwrap();
        t.cut();
        assert!(t.content(&["a"]).is_none());
    }

    #[test]
    fn rename_within_a_directory_is_all_or_nothing() {
        let mut t = T::new();
        let f = t.file(ROOT, "x.tmp", b"new");
        t.m.fsync(f).unwrap();
        let old = t.file(ROOT, "x", b"old");
        t.m.fsync(old).unwrap();
        t.m.fsync(ROOT).unwrap();
        t.m.rename(ROOT, OsStr::new("x.tmp"), ROOT, OsStr::new("x"), false)
            .unwrap();
        assert_eq!(t.content(&["x"]).unwrap(), b"new");
        t.cut();
        // Directory not synced: the old name and the old file.
        assert_eq!(t.content(&["x"]).unwrap(), b"old");
        assert_eq!(t.content(&["x.tmp"]).unwrap(), b"new");
        t.m.rename(ROOT, OsStr::new("x.tmp"), ROOT, OsStr::new("x"), false)
            .unwrap();
        t.m.fsync(ROOT).unwrap();
        t.cut();
        assert_eq!(t.content(&["x"]).unwrap(), b"new");
        assert!(t.content(&["x.tmp"]).is_none());
    }

    #[test]
    fn rename_across_directories_is_durable_per_directory() {
        let mut t = T::new();
        let a = t.m.mkdir(ROOT, OsStr::new("a"), 0o755, 0, 0).unwrap();
        let b = t.m.mkdir(ROOT, OsStr::new("b"), 0o755, 0, 0).unwrap();
        let f = t.file(a, "f", b"data");
        for ino in [f, a, b, ROOT] {
            t.m.fsync(ino).unwrap();
        }
        let (a, b) = (
            t.m.lookup(ROOT, OsStr::new("a")).unwrap(),
            t.m.lookup(ROOT, OsStr::new("b")).unwrap(),
        );
        t.m.rename(a, OsStr::new("f"), b, OsStr::new("g"), false)
            .unwrap();
        t.m.fsync(b).unwrap(); // the target only
        t.cut();
        assert_eq!(t.content(&["a", "f"]).unwrap(), b"data");
        assert_eq!(t.content(&["b", "g"]).unwrap(), b"data");
        // One file under two names (as if hard-linked): it was one inode all along.
        let g =
            t.m.lookup(t.m.lookup(ROOT, OsStr::new("b")).unwrap(), OsStr::new("g"))
                .unwrap();
        t.m.open(g).unwrap();
        t.m.write(g, 0, b"DATA").unwrap();
        assert_eq!(t.content(&["a", "f"]).unwrap(), b"DATA");
        let f =
            t.m.lookup(t.m.lookup(ROOT, OsStr::new("a")).unwrap(), OsStr::new("f"));
        assert_eq!(f.unwrap(), g);
        // The source only: the name is nowhere.
        let a = t.m.lookup(ROOT, OsStr::new("a")).unwrap();
        let b = t.m.lookup(ROOT, OsStr::new("b")).unwrap();
        t.m.rename(a, OsStr::new("f"), b, OsStr::new("h"), false)
            .unwrap();
        t.m.fsync(a).unwrap();
        t.cut();
        assert!(t.content(&["a", "f"]).is_none());
        assert!(t.content(&["b", "h"]).is_none());
    }

    #[test]
    fn a_new_directory_needs_its_parent_synced() {
        let mut t = T::new();
        let d = t.m.mkdir(ROOT, OsStr::new("d"), 0o755, 0, 0).unwrap();
        let e = t.m.mkdir(d, OsStr::new("e"), 0o755, 0, 0).unwrap();
        let f = t.file(e, "f", b"data");
        t.m.fsync(f).unwrap();
        t.m.fsync(e).unwrap();
        t.m.fsync(d).unwrap(); // ... but not ROOT
        t.cut();
        assert!(t.content(&["d"]).is_none());
        let d = t.m.mkdir(ROOT, OsStr::new("d"), 0o755, 0, 0).unwrap();
        let e = t.m.mkdir(d, OsStr::new("e"), 0o755, 0, 0).unwrap();
        let f = t.file(e, "f", b"data");
        for ino in [f, e, d, ROOT] {
            t.m.fsync(ino).unwrap();
        }
        t.cut();
        assert_eq!(t.content(&["d", "e", "f"]).unwrap(), b"data");
    }

    #[test]
    fn truncate_and_holes_follow_the_last_sync() {
        let mut t = T::new();
        let f = t.file(ROOT, "a", b"0123456789");
        t.m.fsync(f).unwrap();
        t.m.fsync(ROOT).unwrap();
        t.m.set_len(f, 4).unwrap();
        t.m.write(f, 6, b"xy").unwrap(); // a hole at 4..6
        assert_eq!(t.content(&["a"]).unwrap(), b"0123\0\0xy");
        t.cut();
        assert_eq!(t.content(&["a"]).unwrap(), b"0123456789");
        let f = t.m.lookup(ROOT, OsStr::new("a")).unwrap();
        t.m.open(f).unwrap();
        t.m.set_len(f, 4).unwrap();
        t.m.write(f, 6, b"xy").unwrap();
        t.m.write(f, 0, b"A").unwrap();
        t.m.fsync(f).unwrap();
        t.m.set_len(f, 0).unwrap();
        t.cut();
        assert_eq!(t.content(&["a"]).unwrap(), b"A123\0\0xy");
    }

    #[test]
    fn clean_unmount_keeps_everything_and_base_is_never_written() {
        let mut t = T::new();
        let f = t.file(ROOT, "a", b"abc");
        t.m.fsync(f).unwrap();
        t.m.fsync(ROOT).unwrap();
        t.remount();
        let base = std::fs::read(t.tree("a")).unwrap();
        let f = t.m.lookup(ROOT, OsStr::new("a")).unwrap();
        t.m.open(f).unwrap();
        t.m.write(f, 3, b"def").unwrap();
        t.file(ROOT, "b", b"unsynced");
        assert_eq!(std::fs::read(t.tree("a")).unwrap(), base, "base/ untouched");
        t.remount(); // no cut
        assert_eq!(t.content(&["a"]).unwrap(), b"abcdef");
        assert_eq!(t.content(&["b"]).unwrap(), b"unsynced");
    }

    #[test]
    fn hard_links_are_one_file_and_each_name_needs_its_directory_synced() {
        let mut t = T::new();
        let f = t.file(ROOT, "a", b"one");
        t.m.fsync(f).unwrap();
        t.m.fsync(ROOT).unwrap();
        t.m.link(f, ROOT, OsStr::new("b")).unwrap();
        t.cut();
        assert!(t.content(&["b"]).is_none(), "link not synced: gone");
        let f = t.m.lookup(ROOT, OsStr::new("a")).unwrap();
        t.m.link(f, ROOT, OsStr::new("b")).unwrap();
        t.m.fsync(ROOT).unwrap();
        t.cut();
        let b = t.m.lookup(ROOT, OsStr::new("b")).unwrap();
        assert_eq!(b, t.m.lookup(ROOT, OsStr::new("a")).unwrap(), "one node");
        assert_eq!(t.m.attr(b).unwrap().nlink, 2);
        t.m.open(b).unwrap();
        t.m.write(b, 0, b"ONE").unwrap();
        assert_eq!(t.content(&["a"]).unwrap(), b"ONE");
        t.m.fsync(b).unwrap();
        t.m.unlink(ROOT, OsStr::new("b")).unwrap();
        t.m.fsync(ROOT).unwrap();
        t.cut();
        assert_eq!(t.content(&["a"]).unwrap(), b"ONE");
        assert!(t.content(&["b"]).is_none());
    }

    #[test]
    fn errors_match_the_system_calls() {
        let mut t = T::new();
        let d = t.m.mkdir(ROOT, OsStr::new("d"), 0o755, 0, 0).unwrap();
        t.file(d, "f", b"");
        assert_eq!(
            t.m.rmdir(ROOT, OsStr::new("d")).unwrap_err().errno(),
            libc::ENOTEMPTY
        );
        assert_eq!(
            t.m.unlink(ROOT, OsStr::new("d")).unwrap_err().errno(),
            libc::EISDIR
        );
        assert_eq!(
            t.m.create(d, OsStr::new("f"), 0o644, 0, 0)
                .unwrap_err()
                .errno(),
            libc::EEXIST
        );
        assert_eq!(
            t.m.rename(ROOT, OsStr::new("d"), d, OsStr::new("x"), false)
                .unwrap_err()
                .errno(),
            libc::EINVAL
        );
        t.file(ROOT, "g", b"");
        assert_eq!(
            t.m.rename(ROOT, OsStr::new("g"), d, OsStr::new("f"), true)
                .unwrap_err()
                .errno(),
            libc::EEXIST
        );
        assert_eq!(
            t.m.lookup(ROOT, OsStr::new("nope")).unwrap_err().errno(),
            libc::ENOENT
        );
    }
}
