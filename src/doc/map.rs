//! [`Map`]: an object's entries in insertion order, with a hash index once it is large.

use std::fmt;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use thin_vec::ThinVec;

use super::{Key, Value};

/// Above this many entries a map keeps a hash index: below it a scan of short keys is quicker
/// than hashing, and the index would cost more memory than the entries.
const INDEX_ABOVE: usize = 32;
/// An index is dropped only below this, so that a map that hovers around [`INDEX_ABOVE`] does not
/// rebuild it on every insert and removal.
const INDEX_BELOW: usize = INDEX_ABOVE / 2;

/// A JSON object: entries in insertion order (MongoDB's key order; a removal shifts the entries
/// after it, as `IndexMap::shift_remove`). Equality ignores the order, as serde_json's.
#[derive(Clone, Default)]
pub struct Map {
  // Behind one pointer (its length and capacity live in the allocation) to keep `Value` at 32
  // bytes; an empty map allocates nothing.
  entries: ThinVec<(Key, Value)>,
  index: Option<Box<Index>>,
}

/// Positions of the entries, hashed by the keys stored in the entries themselves.
#[derive(Clone)]
struct Index {
  table: HashTable<usize>,
  // Seeded per index: keys come from other processes, and a fixed seed would let one pick keys
  // that collide.
  hasher: RandomState,
}

impl Index {
  fn build(entries: &[(Key, Value)]) -> Box<Index> {
    let mut index = Box::new(Index {
      table: HashTable::with_capacity(entries.len()),
      hasher: RandomState::default(),
    });
    for (position, (key, _)) in entries.iter().enumerate() {
      let hash = index.hasher.hash_one(key.as_str());
      let hasher = &index.hasher;
      index.table.insert_unique(hash, position, |&at| {
        hasher.hash_one(entries[at].0.as_str())
      });
    }
    index
  }

  fn find(&self, entries: &[(Key, Value)], key: &str) -> Option<usize> {
    let hash = self.hasher.hash_one(key);
    self.table.find(hash, |&at| entries[at].0 == key).copied()
  }
}

impl Map {
  /// An empty map; allocates nothing.
  pub fn new() -> Map {
    Map::default()
  }

  /// An empty map with room for `capacity` entries.
  pub fn with_capacity(capacity: usize) -> Map {
    Map {
      entries: ThinVec::with_capacity(capacity),
      index: None,
    }
  }

  /// Gives back the room for entries beyond those held.
  pub fn shrink_to_fit(&mut self) {
    self.entries.shrink_to_fit();
  }

  /// The number of entries.
  pub fn len(&self) -> usize {
    self.entries.len()
  }

  /// Whether the map has no entries.
  pub fn is_empty(&self) -> bool {
    self.entries.is_empty()
  }

  fn position(&self, key: &str) -> Option<usize> {
    match &self.index {
      Some(index) => index.find(&self.entries, key),
      None => self.entries.iter().position(|(k, _)| k == key),
    }
  }

  /// The value of `key`.
  pub fn get(&self, key: &str) -> Option<&Value> {
    self.position(key).map(|at| &self.entries[at].1)
  }

  /// The value of `key`, to change.
  pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
    self.position(key).map(|at| &mut self.entries[at].1)
  }

  /// Whether the map has `key`.
  pub fn contains_key(&self, key: &str) -> bool {
    self.position(key).is_some()
  }

  /// Sets `key` to `value`: in place if the key exists (returning the old value), else appended.
  pub fn insert<K: AsRef<str> + Into<Key>>(&mut self, key: K, value: Value) -> Option<Value> {
    if let Some(at) = self.position(key.as_ref()) {
      return Some(std::mem::replace(&mut self.entries[at].1, value));
    }
    self.push_new(key.into(), value);
    None
  }

  /// Appends an entry whose key the caller knows is absent.
  fn push_new(&mut self, key: Key, value: Value) {
    let position = self.entries.len();
    self.entries.push((key, value));
    match &mut self.index {
      Some(index) => {
        let entries = &self.entries;
        let hash = index.hasher.hash_one(entries[position].0.as_str());
        let hasher = &index.hasher;
        index.table.insert_unique(hash, position, |&at| {
          hasher.hash_one(entries[at].0.as_str())
        });
      }
      None if self.entries.len() > INDEX_ABOVE => self.index = Some(Index::build(&self.entries)),
      None => {}
    }
  }

  /// Removes `key` and returns its value; the entries after it move up one place.
  pub fn shift_remove(&mut self, key: &str) -> Option<Value> {
    let at = self.position(key)?;
    let (_, value) = self.entries.remove(at);
    if self.entries.len() < INDEX_BELOW {
      self.index = None;
    } else if let Some(index) = &mut self.index {
      let hash = index.hasher.hash_one(key);
      if let Ok(found) = index.table.find_entry(hash, |&p| p == at) {
        found.remove();
      }
      for position in index.table.iter_mut() {
        if *position > at {
          *position -= 1;
        }
      }
    }
    Some(value)
  }

  /// Keeps only the entries for which `keep` returns true, in their order.
  pub fn retain(&mut self, mut keep: impl FnMut(&Key, &mut Value) -> bool) {
    let before = self.entries.len();
    self.entries.retain_mut(|(key, value)| keep(key, value));
    if self.entries.len() != before {
      self.reindex();
    }
  }

  /// Rebuilds or drops the index after entries moved.
  fn reindex(&mut self) {
    self.index = (self.entries.len() > INDEX_ABOVE).then(|| Index::build(&self.entries));
  }

  /// The keys in order.
  pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Key> + ExactSizeIterator {
    self.entries.iter().map(|(key, _)| key)
  }

  /// The values in order.
  pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
    self.entries.iter().map(|(_, value)| value)
  }

  /// The entries in order.
  pub fn iter(&self) -> Iter<'_> {
    Iter(self.entries.iter())
  }

  /// The entries in order, values to change.
  pub fn iter_mut(&mut self) -> IterMut<'_> {
    IterMut(self.entries.iter_mut())
  }

  /// Whether the hash index is built (for tests of its switching).
  #[cfg(test)]
  pub(crate) fn is_indexed(&self) -> bool {
    self.index.is_some()
  }
}

impl PartialEq for Map {
  fn eq(&self, other: &Map) -> bool {
    self.len() == other.len()
      && self
        .iter()
        .all(|(key, value)| other.get(key).is_some_and(|theirs| value == theirs))
  }
}

impl fmt::Debug for Map {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_map().entries(self.iter()).finish()
  }
}

impl<K: AsRef<str> + Into<Key>> FromIterator<(K, Value)> for Map {
  fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Map {
    let mut map = Map::new();
    map.extend(iter);
    map
  }
}

impl<K: AsRef<str> + Into<Key>> Extend<(K, Value)> for Map {
  fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
    for (key, value) in iter {
      self.insert(key, value);
    }
  }
}

/// The entries of a [`Map`] in order.
pub struct Iter<'a>(std::slice::Iter<'a, (Key, Value)>);

impl<'a> Iterator for Iter<'a> {
  type Item = (&'a Key, &'a Value);
  fn next(&mut self) -> Option<Self::Item> {
    self.0.next().map(|(key, value)| (key, value))
  }
  fn size_hint(&self) -> (usize, Option<usize>) {
    self.0.size_hint()
  }
}

impl DoubleEndedIterator for Iter<'_> {
  fn next_back(&mut self) -> Option<Self::Item> {
    self.0.next_back().map(|(key, value)| (key, value))
  }
}

impl ExactSizeIterator for Iter<'_> {}

/// The entries of a [`Map`] in order, values to change.
pub struct IterMut<'a>(std::slice::IterMut<'a, (Key, Value)>);

impl<'a> Iterator for IterMut<'a> {
  type Item = (&'a Key, &'a mut Value);
  fn next(&mut self) -> Option<Self::Item> {
    self.0.next().map(|(key, value)| (&*key, value))
  }
  fn size_hint(&self) -> (usize, Option<usize>) {
    self.0.size_hint()
  }
}

impl ExactSizeIterator for IterMut<'_> {}

impl<'a> IntoIterator for &'a Map {
  type Item = (&'a Key, &'a Value);
  type IntoIter = Iter<'a>;
  fn into_iter(self) -> Iter<'a> {
    self.iter()
  }
}

impl<'a> IntoIterator for &'a mut Map {
  type Item = (&'a Key, &'a mut Value);
  type IntoIter = IterMut<'a>;
  fn into_iter(self) -> IterMut<'a> {
    self.iter_mut()
  }
}

impl IntoIterator for Map {
  type Item = (Key, Value);
  type IntoIter = thin_vec::IntoIter<(Key, Value)>;
  fn into_iter(self) -> Self::IntoIter {
    self.entries.into_iter()
  }
}
