//! Decoding of PostgreSQL's pgoutput logical replication protocol (version
//! 1, text format), as `pg_logical_slot_peek_binary_changes` returns it: one
//! message per row. Pure Rust: no PostgreSQL in here.
//!
//! Only what WAL capture needs is kept: the transaction id of each change,
//! the relation (and its columns' names), and the old and new tuples as text
//! values. Numbers are big-endian; strings are NUL-terminated.

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    /// A TOASTed value the UPDATE did not change (not sent): take it from the old tuple.
    Unchanged,
    Text(String),
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin {
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
    },
    Relation {
        relid: u32,
        columns: Vec<String>,
    },
    Insert {
        relid: u32,
        new: Vec<Value>,
    },
    Update {
        relid: u32,
        old: Option<Vec<Value>>,
        new: Vec<Value>,
    },
    Delete {
        relid: u32,
        old: Vec<Value>,
    },
    Truncate {
        relids: Vec<u32>,
    },
    /// Origin, type, logical message...: nothing for capture.
    Other,
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.data.len()).ok_or("pgoutput message ends early")?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> Result<String, String> {
        let rest = &self.data[self.at..];
        let len = rest.iter().position(|b| *b == 0).ok_or("pgoutput string without its NUL")?;
        let s = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.at += len + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Value>, String> {
        let n = self.i16()?;
        (0..n)
            .map(|_| match self.u8()? {
                b'n' => Ok(Value::Null),
                b'u' => Ok(Value::Unchanged),
                b't' => {
                    let len = self.u32()? as usize;
                    Ok(Value::Text(String::from_utf8_lossy(self.take(len)?).into_owned()))
                }
                k => Err(format!("unexpected pgoutput column kind {:?}", k as char)),
            })
            .collect()
    }
}

/// Decode one pgoutput message.
pub fn decode(data: &[u8]) -> Result<Message, String> {
    let mut r = Reader { data, at: 0 };
    match r.u8()? {
        b'B' => {
            let _final_lsn = r.u64()?;
            let _commit_time = r.u64()?;
            Ok(Message::Begin { xid: r.u32()? })
        }
        b'C' => {
            let _flags = r.u8()?;
            let commit_lsn = r.u64()?;
            let end_lsn = r.u64()?;
            Ok(Message::Commit { commit_lsn, end_lsn })
        }
        b'R' => {
            let relid = r.u32()?;
            let _namespace = r.string()?;
            let _name = r.string()?;
            let _replica_identity = r.u8()?;
            let n = r.i16()?;
            let mut columns = Vec::new();
            for _ in 0..n {
                let _flags = r.u8()?;
                columns.push(r.string()?);
                let _type = r.u32()?;
                let _typmod = r.u32()?;
            }
            Ok(Message::Relation { relid, columns })
        }
        b'I' => {
            let relid = r.u32()?;
            match r.u8()? {
                b'N' => Ok(Message::Insert { relid, new: r.tuple()? }),
                k => Err(format!("unexpected pgoutput insert part {:?}", k as char)),
            }
        }
        b'U' => {
            let relid = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(format!("unexpected pgoutput update part {:?}", kind as char));
            }
            Ok(Message::Update { relid, old, new: r.tuple()? })
        }
        b'D' => {
            let relid = r.u32()?;
            match r.u8()? {
                b'K' | b'O' => Ok(Message::Delete { relid, old: r.tuple()? }),
                k => Err(format!("unexpected pgoutput delete part {:?}", k as char)),
            }
        }
        b'T' => {
            let n = r.u32()?;
            let _options = r.u8()?;
            Ok(Message::Truncate { relids: (0..n).map(|_| r.u32()).collect::<Result<_, _>>()? })
        }
        _ => Ok(Message::Other),
    }
}

/// The new tuple of an UPDATE with TOASTed values it did not change filled
/// in from the old tuple (which REPLICA IDENTITY FULL sends whole).
pub fn fill_unchanged(new: &[Value], old: &[Value]) -> Vec<Value> {
    new.iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Unchanged => old.get(i).cloned().unwrap_or(Value::Null),
            v => v.clone(),
        })
        .collect()
}

/// A pg_snapshot (`xmin:xmax:xip,...`, full transaction ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub xmin: u64,
    pub xmax: u64,
    pub xip: Vec<u64>,
}

impl Snapshot {
    /// Parse the text form of a pg_snapshot.
    pub fn parse(text: &str) -> Result<Snapshot, String> {
        let mut parts = text.trim().splitn(3, ':');
        let num = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok()).ok_or_else(|| format!("bad pg_snapshot {text:?}"));
        let xmin = num(parts.next())?;
        let xmax = num(parts.next())?;
        let xip = match parts.next() {
            Some("") | None => Vec::new(),
            Some(list) => {
                list.split(',').map(|x| x.parse::<u64>().map_err(|_| format!("bad pg_snapshot {text:?}"))).collect::<Result<_, _>>()?
            }
        };
        Ok(Snapshot { xmin, xmax, xip })
    }

    /// Whether the (committed) transaction `xid` is visible in the snapshot,
    /// as pg_visible_in_snapshot says.
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.xip.contains(&xid))
    }

    /// Whether this snapshot sees every transaction `earlier` sees (when
    /// taken after it).
    pub fn sees_all_of(&self, earlier: &Snapshot) -> bool {
        earlier.xmax <= self.xmax && self.xip.iter().all(|x| !earlier.sees(*x))
    }
}

/// The full transaction id of a 32-bit `xid` of a recent transaction, given
/// the next full transaction id (epoch from it; a larger low half is of the
/// epoch before).
pub fn full_xid(xid: u32, next_full: u64) -> u64 {
    let epoch = next_full >> 32;
    let low = next_full as u32;
    if xid <= low || epoch == 0 {
        (epoch << 32) | xid as u64
    } else {
        ((epoch - 1) << 32) | xid as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(values: &[Option<&str>]) -> Vec<u8> {
        let mut out = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => out.push(b'n'),
                Some("\u{0}unchanged") => out.push(b'u'),
                Some(s) => {
                    out.push(b't');
                    out.extend((s.len() as u32).to_be_bytes());
                    out.extend(s.as_bytes());
                }
            }
        }
        out
    }

    #[test]
    fn decodes_the_messages_capture_needs() {
        let mut begin = vec![b'B'];
        begin.extend(7u64.to_be_bytes());
        begin.extend(0u64.to_be_bytes());
        begin.extend(742u32.to_be_bytes());
        assert_eq!(decode(&begin), Ok(Message::Begin { xid: 742 }));

        let mut rel = vec![b'R'];
        rel.extend(16384u32.to_be_bytes());
        rel.extend(b"public\0t\0f");
        rel.extend(2i16.to_be_bytes());
        for name in ["k", "v"] {
            rel.push(1);
            rel.extend(name.as_bytes());
            rel.push(0);
            rel.extend(23u32.to_be_bytes());
            rel.extend((-1i32).to_be_bytes());
        }
        assert_eq!(decode(&rel), Ok(Message::Relation { relid: 16384, columns: vec!["k".into(), "v".into()] }));

        let mut ins = vec![b'I'];
        ins.extend(16384u32.to_be_bytes());
        ins.push(b'N');
        ins.extend(tuple(&[Some("1"), None]));
        assert_eq!(decode(&ins), Ok(Message::Insert { relid: 16384, new: vec![Value::Text("1".into()), Value::Null] }));

        let mut upd = vec![b'U'];
        upd.extend(16384u32.to_be_bytes());
        upd.push(b'O');
        upd.extend(tuple(&[Some("1"), Some("long")]));
        upd.push(b'N');
        upd.extend(tuple(&[Some("2"), Some("\u{0}unchanged")]));
        let Ok(Message::Update { old: Some(old), new, .. }) = decode(&upd) else { panic!("an update") };
        assert_eq!(fill_unchanged(&new, &old), vec![Value::Text("2".into()), Value::Text("long".into())]);

        let mut del = vec![b'D'];
        del.extend(16384u32.to_be_bytes());
        del.push(b'O');
        del.extend(tuple(&[Some("2"), Some("x")]));
        assert!(matches!(decode(&del), Ok(Message::Delete { relid: 16384, .. })));

        let mut trunc = vec![b'T'];
        trunc.extend(2u32.to_be_bytes());
        trunc.push(0);
        trunc.extend(5u32.to_be_bytes());
        trunc.extend(6u32.to_be_bytes());
        assert_eq!(decode(&trunc), Ok(Message::Truncate { relids: vec![5, 6] }));

        assert!(decode(&[b'I', 0, 0]).is_err());
        assert_eq!(decode(&[b'O']), Ok(Message::Other));
    }

    #[test]
    fn snapshots_and_full_xids() {
        let s = Snapshot::parse("100:110:103,105").unwrap();
        assert!(s.sees(99) && s.sees(104) && !s.sees(103) && !s.sees(110) && !s.sees(200));
        assert_eq!(Snapshot::parse("5:5:").unwrap().xip, Vec::<u64>::new());
        assert!(Snapshot::parse("x").is_err());
        let later = Snapshot::parse("103:120:103,112").unwrap();
        assert!(!later.sees_all_of(&Snapshot::parse("100:110:105").unwrap()), "103 was committed for the earlier one");
        assert!(later.sees_all_of(&Snapshot::parse("100:110:103,105").unwrap()));
        assert!(!Snapshot::parse("100:105:").unwrap().sees_all_of(&s));
        assert_eq!(full_xid(10, (3 << 32) | 20), (3 << 32) | 10);
        assert_eq!(full_xid(u32::MAX - 1, (3 << 32) | 20), (2 << 32) | (u32::MAX - 1) as u64);
    }
}
