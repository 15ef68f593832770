//! A plugin's complete environment, built once per operation in the form
//! the executor hands to `posix_spawn`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

/// A plugin's complete environment: `NAME=value` entries sorted by name
/// (byte order), one per name.
///
/// This is what an executor sets for a plugin, and nothing else: the
/// caller's environment shaped by the [`PluginEnv`](crate::PluginEnv) in
/// force, with the six CNI variables set over it
/// ([`Invocation::exec_env`](crate::Invocation::exec_env), and
/// `ExecRequest::env` for a [`PluginExec`](crate::PluginExec)). It is immutable
/// and cheap to clone (shared): the entries live in one buffer of
/// NUL-terminated `NAME=value` strings, which is also the `envp` block a
/// process is started with, so an operation's plugins share one copy.
///
/// Build one from pairs with [`FromIterator`] (a later duplicate wins, as
/// with `std::process::Command::env`):
///
/// ```
/// use libcni::exec::Environment;
/// let env: Environment = [("B", "1"), ("A", "2"), ("B", "3")].into_iter().collect();
/// let pairs: Vec<_> = env.iter().map(|(k, v)| (k.to_str().unwrap(), v.to_str().unwrap())).collect();
/// assert_eq!(pairs, [("A", "2"), ("B", "3")]);
/// assert_eq!(env.get("B").unwrap(), "3");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment(Arc<Block>);

#[derive(Default, PartialEq, Eq)]
struct Block {
    /// `NAME=value\0` strings back to back, in name order.
    buf: Box<[u8]>,
    /// Where each entry starts in `buf`, and its name's length.
    entries: Box<[(u32, u32)]>,
    /// Whether a name or value holds a NUL byte (such an environment cannot
    /// be passed to a process).
    nul: bool,
}

impl Environment {
    /// An empty environment.
    pub fn new() -> Environment {
        Environment::default()
    }

    /// The number of variables.
    pub fn len(&self) -> usize {
        self.0.entries.len()
    }

    /// Whether there are no variables.
    pub fn is_empty(&self) -> bool {
        self.0.entries.is_empty()
    }

    /// The variables, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&OsStr, &OsStr)> + '_ {
        (0..self.len()).map(|i| self.entry(i))
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: impl AsRef<OsStr>) -> Option<&OsStr> {
        let name = name.as_ref().as_bytes();
        let i = self
            .0
            .entries
            .binary_search_by(|&(start, len)| {
                self.0.buf[start as usize..][..len as usize].cmp(name)
            })
            .ok()?;
        Some(self.entry(i).1)
    }

    /// This environment with `vars` set over it (a later duplicate wins).
    #[must_use]
    pub fn with_vars<K, V>(&self, vars: impl IntoIterator<Item = (K, V)>) -> Environment
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let vars: Vec<(K, V)> = vars.into_iter().collect();
        self.set_over(
            vars.iter()
                .map(|(k, v)| (k.as_ref().as_bytes(), v.as_ref().as_bytes()))
                .collect(),
        )
    }

    /// This environment without the variables `names`.
    #[must_use]
    pub fn without<S: AsRef<OsStr>>(&self, names: &[S]) -> Environment {
        let pairs: Vec<(&[u8], &[u8])> = self
            .iter()
            .filter(|(k, _)| !names.iter().any(|n| n.as_ref() == *k))
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        Environment::from_pairs(pairs)
    }

    /// This environment with `vars` set over it (a later duplicate wins):
    /// one merge, with only `vars` sorted.
    pub(crate) fn set_over(&self, mut vars: Vec<(&[u8], &[u8])>) -> Environment {
        use std::cmp::Ordering::{Equal, Greater, Less};
        // Stable: equal names stay in order, and the last of each is kept.
        vars.sort_by(|a, b| a.0.cmp(b.0));
        vars.reverse();
        vars.dedup_by(|later, first| later.0 == first.0);
        vars.reverse();
        let extra: usize = vars.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut out = Builder::with_capacity(self.0.buf.len() + extra, self.len() + vars.len());
        out.nul = self.0.nul;
        // Entries of `self` are copied whole (`NAME=value\0`), unchecked.
        let mut base = (0..self.len()).peekable();
        let mut over = vars.into_iter().peekable();
        loop {
            match (base.peek(), over.peek()) {
                (None, None) => break,
                (Some(&i), o) => {
                    let name = self.name_bytes(i);
                    match o.map(|o| name.cmp(o.0)) {
                        None | Some(Less) => {
                            out.push_raw(self.raw_entry(i), name.len());
                            base.next();
                            continue;
                        }
                        Some(Equal) => {
                            base.next();
                        }
                        Some(Greater) => {}
                    }
                }
                (None, Some(_)) => {}
            }
            let (k, v) = over.next().expect("peeked");
            out.push(k, v);
        }
        out.finish()
    }

    fn name_bytes(&self, i: usize) -> &[u8] {
        let (start, len) = self.0.entries[i];
        &self.0.buf[start as usize..][..len as usize]
    }

    /// Entry `i` as it is in the block: `NAME=value\0`.
    fn raw_entry(&self, i: usize) -> &[u8] {
        let start = self.0.entries[i].0 as usize;
        let end = match self.0.entries.get(i + 1) {
            Some(&(next, _)) => next as usize,
            None => self.0.buf.len(),
        };
        &self.0.buf[start..end]
    }

    fn entry(&self, i: usize) -> (&OsStr, &OsStr) {
        let name_len = self.0.entries[i].1 as usize;
        let raw = self.raw_entry(i);
        (
            OsStr::from_bytes(&raw[..name_len]),
            OsStr::from_bytes(&raw[name_len + 1..raw.len() - 1]),
        )
    }

    /// Whether a name or value holds a NUL byte.
    pub(crate) fn has_nul(&self) -> bool {
        self.0.nul
    }

    /// The NUL-terminated `NAME=value` strings, in order, as offsets into
    /// [`block`](Self::block).
    pub(crate) fn offsets(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.0.entries.iter().map(|&(start, _)| start as usize)
    }

    /// The buffer of NUL-terminated `NAME=value` strings.
    pub(crate) fn block(&self) -> &[u8] {
        &self.0.buf
    }

    /// Builds the environment of `pairs`: sorted by name, the later of
    /// duplicates kept.
    pub(crate) fn from_pairs(pairs: Vec<(&[u8], &[u8])>) -> Environment {
        // Sorting indices keyed by the name's first eight bytes (big-endian,
        // zero-padded: the same order as the bytes) compares integers, not
        // strings, for nearly every pair; equal prefixes fall back to the
        // names, equal names to the later index first.
        let prefix = |k: &[u8]| {
            let mut b = [0u8; 8];
            let n = k.len().min(8);
            b[..n].copy_from_slice(&k[..n]);
            u64::from_be_bytes(b)
        };
        let mut keyed: Vec<(u64, u32)> = pairs
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (prefix(k), i as u32))
            .collect();
        keyed.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| pairs[a.1 as usize].0.cmp(pairs[b.1 as usize].0))
                .then(b.1.cmp(&a.1))
        });
        keyed.dedup_by(|later, first| pairs[later.1 as usize].0 == pairs[first.1 as usize].0);
        let len: usize = keyed
            .iter()
            .map(|&(_, i)| pairs[i as usize].0.len() + pairs[i as usize].1.len() + 2)
            .sum();
        let mut out = Builder::with_capacity(len, keyed.len());
        for &(_, i) in &keyed {
            let (k, v) = pairs[i as usize];
            out.push(k, v);
        }
        out.finish()
    }
}

/// Writes a block, entry by entry, in order.
struct Builder {
    buf: Vec<u8>,
    entries: Vec<(u32, u32)>,
    nul: bool,
}

impl Builder {
    fn with_capacity(bytes: usize, entries: usize) -> Builder {
        Builder {
            buf: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(entries),
            nul: false,
        }
    }

    fn push(&mut self, k: &[u8], v: &[u8]) {
        self.nul |= k.contains(&0) || v.contains(&0);
        self.entries.push((offset(self.buf.len()), offset(k.len())));
        self.buf.extend_from_slice(k);
        self.buf.push(b'=');
        self.buf.extend_from_slice(v);
        self.buf.push(0);
    }

    /// Appends an entry of another block (`NAME=value\0`, its NULs
    /// accounted for there) whose name is `name_len` bytes.
    fn push_raw(&mut self, raw: &[u8], name_len: usize) {
        self.entries
            .push((offset(self.buf.len()), offset(name_len)));
        self.buf.extend_from_slice(raw);
    }

    fn finish(self) -> Environment {
        Environment(Arc::new(Block {
            buf: self.buf.into_boxed_slice(),
            entries: self.entries.into_boxed_slice(),
            nul: self.nul,
        }))
    }
}

/// The process environment as an [`Environment`], and the exact bytes of
/// `environ` it was built from.
struct Snapshot {
    /// Every `environ` string with its NUL, back to back.
    raw: Vec<u8>,
    /// `None` until the first call.
    env: Option<Environment>,
}

static SNAPSHOT: Mutex<Snapshot> = Mutex::new(Snapshot {
    raw: Vec::new(),
    env: None,
});

/// The process environment (split as `std::env::vars_os` splits it: an
/// entry without `=` after its first byte is skipped; a later duplicate
/// wins).
///
/// A runtime's environment rarely changes, so the sorted copy is kept and
/// reused as long as `environ` holds the same strings, which one pass of
/// comparisons over its ~1 KiB checks; copying it into two `OsString`s per
/// variable and sorting them (what `vars_os` makes one do) was about 40% of
/// an operation's own instructions.
///
/// `environ` is read directly, as every `getenv` in libc reads it (time
/// zones, locales, the resolver). That is sound under the contract of
/// `std::env::set_var` and `remove_var`: in a multi-threaded program they
/// must not run while another thread reads the environment other than
/// through `std::env`.
pub(crate) fn process() -> Environment {
    let mut snap = SNAPSHOT.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: `environ` is null or a null-terminated array of pointers to
    // NUL-terminated strings, not changed while it is read (see above);
    // nothing read is kept beyond this block except as copies.
    unsafe {
        let mut p = libc::environ.cast_const();
        let mut at = 0;
        let mut same = true;
        while !p.is_null() && !(*p).is_null() {
            let entry = std::ffi::CStr::from_ptr(*p).to_bytes_with_nul();
            if snap.raw.get(at..at + entry.len()) != Some(entry) {
                same = false;
                break;
            }
            at += entry.len();
            p = p.add(1);
        }
        if let Some(env) = snap.env.as_ref().filter(|_| same && at == snap.raw.len()) {
            return env.clone();
        }
        let mut raw = Vec::with_capacity(snap.raw.len().max(1024));
        let mut p = libc::environ.cast_const();
        while !p.is_null() && !(*p).is_null() {
            raw.extend_from_slice(std::ffi::CStr::from_ptr(*p).to_bytes_with_nul());
            p = p.add(1);
        }
        snap.raw = raw;
    }
    let pairs: Vec<(&[u8], &[u8])> = snap
        .raw
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let eq = entry.get(1..)?.iter().position(|&b| b == b'=')? + 1;
            Some((&entry[..eq], &entry[eq + 1..]))
        })
        .collect();
    let env = Environment::from_pairs(pairs);
    snap.env = Some(env.clone());
    env
}

/// An offset into an environment block, which is far below 4 GiB (the
/// kernel takes at most a quarter of the stack limit for `execve`'s
/// arguments and environment together).
fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("an environment block is smaller than 4 GiB")
}

impl<K: AsRef<OsStr>, V: AsRef<OsStr>> FromIterator<(K, V)> for Environment {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Environment {
        Environment::new().with_vars(iter)
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl From<&Environment> for Vec<(OsString, OsString)> {
    fn from(env: &Environment) -> Vec<(OsString, OsString)> {
        env.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(env: &Environment) -> Vec<(String, String)> {
        env.iter()
            .map(|(k, v)| (k.to_str().unwrap().into(), v.to_str().unwrap().into()))
            .collect()
    }

    #[test]
    fn sorted_unique_latest_wins() {
        let env: Environment = [("Z", "1"), ("A", "1"), ("Z", "2"), ("", "e"), ("AB", "=x=")]
            .into_iter()
            .collect();
        assert_eq!(
            pairs(&env),
            [("", "e"), ("A", "1"), ("AB", "=x="), ("Z", "2")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(env.len(), 4);
        assert_eq!(env.get("AB").unwrap(), "=x=");
        assert_eq!(env.get("").unwrap(), "e");
        assert!(env.get("B").is_none());
        assert_eq!(env.block(), b"=e\0A=1\0AB==x=\0Z=2\0");
        assert_eq!(env.offsets().collect::<Vec<_>>(), [0, 3, 7, 14]);
        assert!(!env.has_nul());
        assert!(Environment::new().is_empty());
        assert_eq!(
            format!("{:?}", env.without(&["A", "Z"])),
            r#"{"": "e", "AB": "=x="}"#
        );
    }

    #[test]
    fn the_process_environment_is_what_std_reads_and_is_reused() {
        let std: Environment = std::env::vars_os().collect();
        let a = process();
        assert_eq!(a, std);
        // Unchanged: the same block, not a copy.
        assert!(Arc::ptr_eq(&a.0, &process().0));
    }

    #[test]
    fn nul_is_remembered() {
        let env: Environment = [("A", "x\0y")].into_iter().collect();
        assert!(env.has_nul());
        assert_eq!(env.get("A").unwrap().as_bytes(), b"x\0y");
    }

    proptest::proptest! {
        #[test]
        fn is_a_stable_sort_keeping_the_last(
            input in proptest::collection::vec(("[AB]{0,10}", "[0-9]{0,2}"), 0..40)
        ) {
            let env: Environment = input.iter().map(|(k, v)| (k, v)).collect();
            let mut want = input.clone();
            want.reverse();
            want.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            want.dedup_by(|later, first| later.0 == first.0);
            proptest::prop_assert_eq!(pairs(&env), want);
            for (k, _) in &input {
                proptest::prop_assert!(env.get(k).is_some());
            }
        }

        #[test]
        fn set_over_is_the_sorted_concatenation(
            base in proptest::collection::vec(("[ABC]{0,3}", "[0-9]{0,2}"), 0..20),
            over in proptest::collection::vec(("[ABC]{0,3}", "[0-9]{0,2}"), 0..8),
        ) {
            let env: Environment = base.iter().map(|(k, v)| (k, v)).collect();
            let got = env.set_over(over.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect());
            let want: Environment = base.iter().chain(&over).map(|(k, v)| (k, v)).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
