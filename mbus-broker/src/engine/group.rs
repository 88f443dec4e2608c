//! One consumer group's state: its ack floor, the offsets above it that are given out, waiting
//! to be given out again or done, its members and their credit. Pure bookkeeping, told the time;
//! the core (`groups.rs`) finds the frames and writes them.
//!
//! The state is bounded whatever the topic holds: the group tracks offsets `floor..next` only,
//! and never gives out an offset `window()` or more past its floor.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::ConnId;

/// How many times `max_ack_pending` the tracked offsets may span.
pub const WINDOW_FACTOR: u64 = 16;
/// The longest a nak may ask a message to wait.
pub const MAX_NAK_DELAY: Duration = Duration::from_secs(3600);
/// How many ack waits after its delivery `progress` may keep a message held.
pub const MAX_PROGRESS_WAITS: u32 = 10;

/// A group's settings, fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long a member may hold a message before it is given out again.
    pub ack_wait: Duration,
    /// Deliveries of a message before it is dead-lettered.
    pub max_deliver: u32,
    /// Messages the group may hold unacknowledged.
    pub max_ack_pending: u32,
    /// The topic dead letters go to.
    pub dead_letter: Box<str>,
}

/// Where one offset of `floor..next` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Acknowledged, dead-lettered or lost.
    Done,
    /// Given to `member` for the `attempt`th time, due back by `deadline`.
    Held {
        member: ConnId,
        attempt: u32,
        deadline: Instant,
        delivered: Instant,
    },
    /// Delivered `attempt` times and to be given out again from `due` on.
    Waiting { attempt: u32, due: Instant },
}

/// A member of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its connection.
    pub conn: ConnId,
    /// The most messages it may hold.
    pub credit: u32,
    /// The messages it holds.
    pub held: u32,
}

/// Why a message goes to the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Delivered `max_deliver` times without an ack.
    MaxDeliver,
    /// Termed by a member.
    Term,
}

impl Reason {
    /// The value of the `mbus-reason` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MaxDeliver => "max-deliver",
            Reason::Term => "term",
        }
    }
}

/// A message the group is done with unprocessed: the core publishes it to the dead-letter
/// topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its offset in the group's topic.
    pub offset: u64,
    /// How many times it was delivered.
    pub attempts: u32,
    /// Why.
    pub reason: Reason,
}

/// What a member is given: offsets `first..first + count`, for the `attempt`th time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub first: u64,
    pub count: u32,
    pub attempt: u32,
}

/// The part of a group that survives a restart: what a durable group saves at each commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub settings: Settings,
    pub floor: u64,
    pub next: u64,
    /// The offsets of `floor..next` not done, each with how many times it was delivered.
    pub outstanding: Vec<(u64, u32)>,
    pub redelivered: u64,
    pub dead_lettered: u64,
    pub lost: u64,
}

/// One consumer group of a topic.
#[derive(Debug)]
pub struct Group {
    /// The group's name.
    pub name: Box<str>,
    pub settings: Settings,
    /// Every offset below it is done.
    floor: u64,
    /// Offsets `floor..floor + slots.len()`; the first is never `Done`.
    slots: VecDeque<Slot>,
    /// Its members, in the order they joined.
    pub members: Vec<Member>,
    /// Messages members hold.
    held: u64,
    /// Waiting offsets by when they are due.
    waiting: BTreeSet<(Instant, u64)>,
    /// Deadlines of held offsets, in the order they were set, which is the order they fall
    /// due (every deadline is its time plus the same ack wait). An entry whose slot no longer
    /// has that deadline is stale and skipped.
    deadlines: VecDeque<(Instant, u64)>,
    pub redelivered: u64,
    pub dead_lettered: u64,
    pub lost: u64,
    /// Changed since it was last saved.
    pub dirty: bool,
}

impl Group {
    /// A new group whose first offset to give out is `start`.
    pub fn new(name: &str, settings: Settings, start: u64) -> Self {
        Group::restore(
            name,
            Snapshot {
                settings,
                floor: start,
                next: start,
                outstanding: Vec::new(),
                redelivered: 0,
                dead_lettered: 0,
                lost: 0,
            },
            None,
        )
        .0
    }

    /// A group as a snapshot left it, at `now`, with no members. What was held or waiting
    /// waits again, due at once, except what was delivered `max_deliver` times already: that is
    /// returned to be dead-lettered. `now` is `None` only for a snapshot with nothing
    /// outstanding.
    pub fn restore(
        name: &str,
        snapshot: Snapshot,
        now: Option<Instant>,
    ) -> (Self, Vec<DeadLetter>) {
        let Snapshot {
            settings,
            floor,
            next,
            outstanding,
            redelivered,
            dead_lettered,
            lost,
        } = snapshot;
        let mut group = Group {
            name: name.into(),
            settings,
            floor,
            slots: std::iter::repeat_n(Slot::Done, (next - floor) as usize).collect(),
            members: Vec::new(),
            held: 0,
            waiting: BTreeSet::new(),
            deadlines: VecDeque::new(),
            redelivered,
            dead_lettered,
            lost,
            dirty: false,
        };
        let mut dead = Vec::new();
        for (offset, attempt) in outstanding {
            if !(floor..next).contains(&offset) {
                continue;
            }
            if attempt >= group.settings.max_deliver {
                dead.push(DeadLetter {
                    offset,
                    attempts: attempt,
                    reason: Reason::MaxDeliver,
                });
                continue;
            }
            let due = now.expect("a time to restore outstanding offsets at");
            group.slots[(offset - floor) as usize] = Slot::Waiting { attempt, due };
            group.waiting.insert((due, offset));
        }
        group.dead_lettered += dead.len() as u64;
        group.advance_floor();
        (group, dead)
    }

    /// What a commit saves.
    pub fn snapshot(&self) -> Snapshot {
        let outstanding = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let attempt = match *slot {
                    Slot::Done => return None,
                    Slot::Held { attempt, .. } | Slot::Waiting { attempt, .. } => attempt,
                };
                Some((self.floor + i as u64, attempt))
            })
            .collect();
        Snapshot {
            settings: self.settings.clone(),
            floor: self.floor,
            next: self.next(),
            outstanding,
            redelivered: self.redelivered,
            dead_lettered: self.dead_lettered,
            lost: self.lost,
        }
    }

    /// Every offset below it is done.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// The first offset never given out.
    pub fn next(&self) -> u64 {
        self.floor + self.slots.len() as u64
    }

    /// Messages members hold.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Messages waiting to be given out again.
    pub fn waiting(&self) -> u64 {
        self.waiting.len() as u64
    }

    /// Its figures, as `GroupState` carries them.
    pub fn stats(&self) -> mbus_proto::GroupStats {
        mbus_proto::GroupStats {
            exists: true,
            members: self.members.len() as u32,
            floor: self.floor,
            next: self.next(),
            in_flight: self.held,
            waiting: self.waiting(),
            redelivered: self.redelivered,
            dead_lettered: self.dead_lettered,
            lost: self.lost,
        }
    }

    /// How far past the floor offsets may be given out.
    pub fn window(&self) -> u64 {
        u64::from(self.settings.max_ack_pending) * WINDOW_FACTOR
    }

    pub fn member(&self, conn: ConnId) -> Option<usize> {
        self.members.iter().position(|m| m.conn == conn)
    }

    /// Adds `conn` as a member with `credit`, or sets its credit if it is one.
    pub fn join(&mut self, conn: ConnId, credit: u32) {
        match self.member(conn) {
            Some(i) => self.members[i].credit = credit,
            None => self.members.push(Member {
                conn,
                credit,
                held: 0,
            }),
        }
    }

    /// Removes member `conn`: what it held waits again at once, or is returned to be
    /// dead-lettered when it was delivered `max_deliver` times.
    pub fn leave(&mut self, conn: ConnId, now: Instant) -> Vec<DeadLetter> {
        let Some(i) = self.member(conn) else {
            return Vec::new();
        };
        let member = self.members.remove(i);
        let mut dead = Vec::new();
        if member.held > 0 {
            for i in 0..self.slots.len() {
                if let Slot::Held {
                    member: m, attempt, ..
                } = self.slots[i]
                {
                    if m == conn {
                        let offset = self.floor + i as u64;
                        self.held -= 1;
                        dead.extend(self.give_back(offset, attempt, now));
                    }
                }
            }
        }
        self.advance_floor();
        dead
    }

    /// Whether member `i` may be given a message now.
    pub fn can_give(&self, i: usize) -> bool {
        let m = &self.members[i];
        m.held < m.credit && self.held < u64::from(self.settings.max_ack_pending)
    }

    /// The offset to give out next at `now`, of those below `visible`: the oldest due
    /// redelivery, else the next new offset if the window allows.
    pub fn next_offset(&self, now: Instant, visible: u64) -> Option<u64> {
        if let Some(&(due, offset)) = self.waiting.first() {
            if due <= now {
                return Some(offset);
            }
        }
        let next = self.next();
        (next < visible && next - self.floor < self.window()).then_some(next)
    }

    /// Gives member `i` what [`Group::next_offset`] named, `start`, and the offsets after it up
    /// to `frame_end` (the end of the run that holds it) that are in the same state: due for
    /// the same redelivery, or new; as many as the member's credit and the group's bound allow.
    pub fn give(&mut self, i: usize, start: u64, frame_end: u64, now: Instant) -> Grant {
        let deadline = now + self.settings.ack_wait;
        let conn = self.members[i].conn;
        let room = u64::from(self.members[i].credit - self.members[i].held)
            .min(u64::from(self.settings.max_ack_pending) - self.held);
        let mut count = 0u64;
        let attempt;
        if start < self.next() {
            let Slot::Waiting { attempt: a, .. } = self.slots[(start - self.floor) as usize] else {
                panic!("offset {start} is not waiting");
            };
            attempt = a + 1;
            while count < room && start + count < frame_end.min(self.next()) {
                let offset = start + count;
                let slot = &mut self.slots[(offset - self.floor) as usize];
                match *slot {
                    Slot::Waiting { attempt: b, due } if b == a && due <= now => {
                        self.waiting.remove(&(due, offset));
                    }
                    _ => break,
                }
                *slot = Slot::Held {
                    member: conn,
                    attempt,
                    deadline,
                    delivered: now,
                };
                self.deadlines.push_back((deadline, offset));
                count += 1;
            }
            self.redelivered += count;
        } else {
            attempt = 1;
            let end = frame_end.min(self.floor + self.window());
            while count < room && start + count < end {
                self.slots.push_back(Slot::Held {
                    member: conn,
                    attempt,
                    deadline,
                    delivered: now,
                });
                self.deadlines.push_back((deadline, start + count));
                count += 1;
            }
        }
        debug_assert!(count > 0, "give is called only when something can be given");
        self.members[i].held += count as u32;
        self.held += count;
        self.dirty = true;
        self.compact_deadlines();
        Grant {
            first: start,
            count: count as u32,
            attempt,
        }
    }

    /// Applies a member's `action` on `offset`; returns a dead letter when it makes one.
    /// Offsets the group does not hold are ignored; a nak or progress counts only from the
    /// member holding the message.
    pub fn settle(
        &mut self,
        conn: ConnId,
        action: mbus_proto::AckAction,
        offset: u64,
        delay: Duration,
        now: Instant,
    ) -> Option<DeadLetter> {
        use mbus_proto::AckAction;
        if offset < self.floor || offset >= self.next() {
            return None;
        }
        let i = (offset - self.floor) as usize;
        let slot = self.slots[i];
        let (holder, attempt) = match slot {
            Slot::Done => return None,
            Slot::Held {
                member, attempt, ..
            } => (Some(member), attempt),
            Slot::Waiting { attempt, .. } => (None, attempt),
        };
        let own = holder == Some(conn);
        let dead = match action {
            AckAction::Ack | AckAction::Term => {
                self.release(offset, slot);
                self.slots[i] = Slot::Done;
                (action == AckAction::Term).then(|| {
                    self.dead_lettered += 1;
                    DeadLetter {
                        offset,
                        attempts: attempt,
                        reason: Reason::Term,
                    }
                })
            }
            AckAction::Nak if own => {
                self.release(offset, slot);
                let due = now + delay.min(MAX_NAK_DELAY);
                self.give_back_at(offset, attempt, due)
            }
            AckAction::Progress if own => {
                let Slot::Held {
                    member,
                    deadline,
                    delivered,
                    ..
                } = slot
                else {
                    unreachable!("own means held");
                };
                let extended = now + self.settings.ack_wait;
                if extended > deadline
                    && extended <= delivered + self.settings.ack_wait * MAX_PROGRESS_WAITS
                {
                    self.slots[i] = Slot::Held {
                        member,
                        attempt,
                        deadline: extended,
                        delivered,
                    };
                    self.deadlines.push_back((extended, offset));
                    self.compact_deadlines();
                }
                return None;
            }
            AckAction::Nak | AckAction::Progress => return None,
        };
        self.dirty = true;
        self.advance_floor();
        dead
    }

    /// Gives back every held offset whose deadline passed by `now`; returns those to
    /// dead-letter. Each is counted in the holder's credit no more.
    pub fn expire(&mut self, now: Instant) -> Vec<DeadLetter> {
        let mut dead = Vec::new();
        while let Some(&(deadline, offset)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if offset < self.floor || offset >= self.next() {
                continue;
            }
            let slot = self.slots[(offset - self.floor) as usize];
            if let Slot::Held {
                deadline: d,
                attempt,
                ..
            } = slot
            {
                if d == deadline {
                    self.release(offset, slot);
                    dead.extend(self.give_back(offset, attempt, now));
                }
            }
        }
        if !dead.is_empty() {
            self.advance_floor();
        }
        dead
    }

    /// The earliest time something is due: a deadline or a redelivery.
    pub fn next_wake(&self) -> Option<Instant> {
        let deadline = self.deadlines.front().map(|&(d, _)| d);
        let due = self.waiting.first().map(|&(d, _)| d);
        deadline.into_iter().chain(due).min()
    }

    /// Marks offsets below `first`, which retention removed, done unless a member holds them,
    /// and moves a group that had not given them out past them. Returns how many were lost.
    pub fn lose_below(&mut self, first: u64) -> u64 {
        let mut lost = 0;
        let end = first.min(self.next());
        for offset in self.floor..end {
            let i = (offset - self.floor) as usize;
            if let Slot::Waiting { due, .. } = self.slots[i] {
                self.waiting.remove(&(due, offset));
                self.slots[i] = Slot::Done;
                lost += 1;
            }
        }
        if self.next() < first {
            lost += first - self.next();
            let n = (first - self.next()) as usize;
            self.slots.extend(std::iter::repeat_n(Slot::Done, n));
        }
        if lost > 0 {
            self.lost += lost;
            self.dirty = true;
            self.advance_floor();
        }
        lost
    }

    /// Marks `offset`, which is damaged in storage, done if it is waiting or the next to give
    /// out; true if it was lost so.
    pub fn lose_one(&mut self, offset: u64) -> bool {
        if offset == self.next() && offset - self.floor < self.window() {
            self.slots.push_back(Slot::Done);
        } else if offset >= self.floor && offset < self.next() {
            let i = (offset - self.floor) as usize;
            let Slot::Waiting { due, .. } = self.slots[i] else {
                return false;
            };
            self.waiting.remove(&(due, offset));
            self.slots[i] = Slot::Done;
        } else {
            return false;
        }
        self.lost += 1;
        self.dirty = true;
        self.advance_floor();
        true
    }

    /// Takes a held or waiting offset out of the member's count and the waiting set.
    fn release(&mut self, offset: u64, slot: Slot) {
        match slot {
            Slot::Held { member, .. } => {
                self.held -= 1;
                if let Some(i) = self.member(member) {
                    self.members[i].held -= 1;
                }
            }
            Slot::Waiting { due, .. } => {
                self.waiting.remove(&(due, offset));
            }
            Slot::Done => {}
        }
    }

    /// A message delivered `attempt` times came back unacknowledged at `now`.
    fn give_back(&mut self, offset: u64, attempt: u32, now: Instant) -> Option<DeadLetter> {
        self.give_back_at(offset, attempt, now)
    }

    /// A message delivered `attempt` times is to be given out again from `due` on, or, if that
    /// was its last delivery, dead-lettered. The caller has released it.
    fn give_back_at(&mut self, offset: u64, attempt: u32, due: Instant) -> Option<DeadLetter> {
        let i = (offset - self.floor) as usize;
        self.dirty = true;
        if attempt >= self.settings.max_deliver {
            self.slots[i] = Slot::Done;
            self.dead_lettered += 1;
            return Some(DeadLetter {
                offset,
                attempts: attempt,
                reason: Reason::MaxDeliver,
            });
        }
        self.slots[i] = Slot::Waiting { attempt, due };
        self.waiting.insert((due, offset));
        None
    }

    /// Moves the floor past the done offsets at its front.
    fn advance_floor(&mut self) {
        while self.slots.front() == Some(&Slot::Done) {
            self.slots.pop_front();
            self.floor += 1;
        }
        self.compact_deadlines();
    }

    /// Drops stale deadlines from the front, and all of them when they grow past twice the
    /// window, so the queue stays bounded however often members ask for more time.
    fn compact_deadlines(&mut self) {
        while let Some(&(deadline, offset)) = self.deadlines.front() {
            if self.is_current(deadline, offset) {
                break;
            }
            self.deadlines.pop_front();
        }
        if self.deadlines.len() as u64 > 2 * self.window().max(1024) {
            let mut deadlines = std::mem::take(&mut self.deadlines);
            deadlines.retain(|&(d, o)| self.is_current(d, o));
            self.deadlines = deadlines;
        }
    }

    /// True if `offset` is held with `deadline`.
    fn is_current(&self, deadline: Instant, offset: u64) -> bool {
        offset >= self.floor
            && offset < self.next()
            && matches!(self.slots[(offset - self.floor) as usize],
                Slot::Held { deadline: d, .. } if d == deadline)
    }
}
