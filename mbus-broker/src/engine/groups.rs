//! Consumer groups in the core: the group frames, giving members their messages through their
//! control buffers, redelivery when an ack wait passes, dead letters, and saving durable groups
//! at each commit. The bookkeeping of one group is `group.rs`.

use std::time::Duration;

use mbus_proto::{
    AckAction, AckRanges, BatchBuilder, ErrorCode, Frame, GroupOptions, GroupStats, Start,
    validate_group, validate_topic,
};

use super::group::{DeadLetter, Group, Settings};
use super::storage::StoreError;
use super::{ConnId, Core, TopicId};

/// The most groups one topic may have.
pub const MAX_GROUPS_PER_TOPIC: usize = 64;
/// Bytes of deliveries put in a member's control buffer at a time.
const GROUP_CHUNK: usize = 64 << 10;

/// The broker's defaults for new groups, which are also the most a `Join` may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// `--ack-wait`.
    pub ack_wait: Duration,
    /// `--max-deliver`.
    pub max_deliver: u32,
    /// `--max-ack-pending`.
    pub max_ack_pending: u32,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            max_ack_pending: 1000,
        }
    }
}

/// One group a consumer connection is a member of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub topic: TopicId,
    /// The group's index in its topic's `groups`.
    pub group: usize,
}

/// The default dead-letter topic of `topic`: its name and `.dlq`, cut to fit.
pub fn default_dead_letter(topic: &str) -> String {
    let keep = topic.len().min(mbus_proto::MAX_TOPIC_LEN - 4);
    format!("{}.dlq", &topic[..keep])
}

/// Why the frame that holds an offset could not be had.
enum Missing {
    /// Retention removed it, or it is damaged on disk: the message is lost.
    Gone,
    /// Storage failed to read it.
    Failed(StoreError),
}

impl Core {
    /// `Join`: makes connection `id` a member of `group` of `topic`, creating the group.
    pub(super) fn join(
        &mut self,
        id: ConnId,
        topic: &str,
        group: &str,
        start: Start,
        credit: u32,
        options: GroupOptions<'_>,
    ) {
        if let Err(e) = validate_group(group) {
            let reason = format!("group {}", e.to_string().replacen("topic ", "", 1));
            return self.reject(id, ErrorCode::InvalidGroup, &reason);
        }
        if credit == 0 {
            return self.reject(
                id,
                ErrorCode::InvalidGroup,
                "a Join needs a credit of 1 or more",
            );
        }
        let Some(tid) = self.topic_for(id, topic, false) else {
            return;
        };
        let conn = &self.conns[id];
        if conn.sub_index(tid).is_some() {
            let reason = format!(
                "this connection subscribes to topic {topic}: it cannot also join a group of it"
            );
            return self.reject(id, ErrorCode::InvalidGroup, &reason);
        }
        let existing = conn.groups.iter().find(|m| m.topic == tid).copied();
        if let Some(m) = existing {
            let other = &self.topics[tid].groups[m.group].name;
            if **other != *group {
                let reason = format!(
                    "this connection is a member of group {other} of topic {topic} already"
                );
                return self.reject(id, ErrorCode::InvalidGroup, &reason);
            }
        }
        if existing.is_none()
            && conn.subs.len() + conn.groups.len() >= self.config.max_subscriptions
        {
            let reason = format!(
                "at the limit of {} subscriptions per connection",
                self.config.max_subscriptions
            );
            return self.reject(id, ErrorCode::LimitReached, &reason);
        }
        let gidx = match self.topics[tid]
            .groups
            .iter()
            .position(|g| *g.name == *group)
        {
            Some(gidx) => gidx,
            None => match self.create_group(id, tid, group, start, options) {
                Some(gidx) => gidx,
                None => return,
            },
        };
        let g = &mut self.topics[tid].groups[gidx];
        g.join(id, credit);
        let (floor, next, settings) = (g.floor(), g.next(), g.settings.clone());
        let end = self.topics[tid].log.visible();
        if existing.is_none() {
            self.conns[id].groups.push(Membership {
                topic: tid,
                group: gidx,
            });
        }
        self.send(
            id,
            Frame::Joined {
                topic,
                group,
                floor,
                next,
                end,
                options: GroupOptions {
                    ack_wait: millis(settings.ack_wait),
                    max_deliver: settings.max_deliver,
                    max_ack_pending: settings.max_ack_pending,
                    dead_letter: Some(&settings.dead_letter),
                },
            },
        );
    }

    /// Creates group `group` of topic `tid` for the `Join` of `id`; `None` when it was refused.
    fn create_group(
        &mut self,
        id: ConnId,
        tid: TopicId,
        group: &str,
        start: Start,
        options: GroupOptions<'_>,
    ) -> Option<usize> {
        let topic = self.topics[tid].name.clone();
        if self.topics[tid].groups.len() >= MAX_GROUPS_PER_TOPIC {
            let reason =
                format!("topic {topic} has {MAX_GROUPS_PER_TOPIC} groups, the most it may have");
            self.reject(id, ErrorCode::LimitReached, &reason);
            return None;
        }
        let dead_letter = match options.dead_letter {
            Some(name) => name.to_owned(),
            None => default_dead_letter(&topic),
        };
        if let Err(e) = validate_topic(&dead_letter) {
            let reason = format!("dead-letter {e}");
            self.reject(id, ErrorCode::InvalidGroup, &reason);
            return None;
        }
        if dead_letter == *topic {
            let reason = format!("topic {topic} cannot be its own dead-letter topic");
            self.reject(id, ErrorCode::InvalidGroup, &reason);
            return None;
        }
        let limits = self.config.groups;
        let pick = |asked: u32, cap: u32| if asked == 0 { cap } else { asked.min(cap) };
        let ack_wait = match options.ack_wait {
            0 => limits.ack_wait,
            ms => Duration::from_millis(ms).min(limits.ack_wait),
        };
        let settings = Settings {
            ack_wait,
            max_deliver: pick(options.max_deliver, limits.max_deliver),
            max_ack_pending: pick(options.max_ack_pending, limits.max_ack_pending),
            dead_letter: dead_letter.into(),
        };
        let offset = match self.resolve_start(tid, start) {
            Ok(offset) => offset,
            Err(reason) => {
                self.reject(id, ErrorCode::Internal, &reason);
                return None;
            }
        };
        // A group's position must outlive the broker: its topic gets its files now.
        let t = &self.topics[tid];
        if t.store.is_none() && t.unavailable.is_none() && self.topics.is_durable() {
            if let Err(e) = self.topics.open_files(tid) {
                self.storage_failed(id, &topic, &e);
                return None;
            }
        }
        log::info!("creating group {group} of topic {topic} at offset {offset}");
        let mut g = Group::new(group, settings, offset);
        g.dirty = true;
        let groups = &mut self.topics[tid].groups;
        groups.push(g);
        let gidx = groups.len() - 1;
        self.note_group_change(tid);
        Some(gidx)
    }

    /// `Leave`: ends the membership of `id` in `group` of `topic`, if it has one.
    pub(super) fn leave(&mut self, id: ConnId, topic: &str, group: &str) {
        let Some((tid, gidx)) = self.membership(id, topic, group) else {
            return;
        };
        self.conns[id]
            .groups
            .retain(|m| !(m.topic == tid && m.group == gidx));
        self.conns[id].next_group = 0;
        self.leave_group(id, tid, gidx);
        self.mark(id);
    }

    /// Takes `id` out of group `gidx` of `tid`: what it held goes to the others at once.
    pub(super) fn leave_group(&mut self, id: ConnId, tid: TopicId, gidx: usize) {
        let now = self.now;
        let dead = self.topics[tid].groups[gidx].leave(id, now);
        self.dead_letter_all(tid, gidx, dead);
        self.note_group_change(tid);
        self.wake_members(tid, gidx);
    }

    /// `Ack`: applies a member's action to the offsets `ranges` names.
    pub(super) fn ack(
        &mut self,
        id: ConnId,
        topic: &str,
        group: &str,
        action: AckAction,
        delay: u64,
        ranges: AckRanges<'_>,
    ) {
        let Some((tid, gidx)) = self.membership(id, topic, group) else {
            return;
        };
        let now = self.now;
        let g = &mut self.topics[tid].groups[gidx];
        let was_full = g.held() >= u64::from(g.settings.max_ack_pending);
        // Only offsets the group tracks can change; a frame that names more of them than the
        // group tracks repeats itself, which no member needs to.
        let (floor, next) = (g.floor(), g.next());
        let mut named = 0u64;
        for (first, count) in ranges.iter() {
            let end = first + u64::from(count);
            named += end.min(next).saturating_sub(first.max(floor));
        }
        if named > g.window().max(1024) {
            let reason = format!(
                "an Ack names {named} offsets of group {group} more than once or more than it tracks"
            );
            return self.reject(id, ErrorCode::Malformed, &reason);
        }
        let delay = Duration::from_millis(delay);
        let mut dead = Vec::new();
        for (first, count) in ranges.iter() {
            let end = (first + u64::from(count)).min(next);
            for offset in first.max(floor)..end {
                dead.extend(g.settle(id, action, offset, delay, now));
            }
        }
        if action == AckAction::Nak && delay > Duration::ZERO {
            self.schedule_groups(now + delay.min(super::group::MAX_NAK_DELAY));
        }
        if action == AckAction::Progress {
            self.schedule_groups(now + self.topics[tid].groups[gidx].settings.ack_wait);
        }
        self.dead_letter_all(tid, gidx, dead);
        self.note_group_change(tid);
        if was_full || action != AckAction::Progress {
            self.wake_members(tid, gidx);
        }
    }

    /// The figures of group `group` of topic `topic`, as `GroupState` carries them (all zero
    /// when there is no such group), for monitoring and tests.
    pub fn group_stats(&self, topic: &str, group: &str) -> GroupStats {
        self.topics
            .find(topic)
            .and_then(|tid| {
                let g = self.topics[tid].groups.iter().find(|g| *g.name == *group)?;
                Some(g.stats())
            })
            .unwrap_or_default()
    }

    /// `GroupInfo`: answers with the group's figures.
    pub(super) fn group_info(&mut self, id: ConnId, topic: &str, group: &str) {
        if !self.group_names_valid(id, topic, group) {
            return;
        }
        let state = self.group_stats(topic, group);
        self.send(
            id,
            Frame::GroupState {
                topic,
                group,
                state,
            },
        );
    }

    /// The topic and group of a membership of `id` named by a frame; `None` (after refusing
    /// the connection, for a name that breaks the rules) when it is no member.
    fn membership(&mut self, id: ConnId, topic: &str, group: &str) -> Option<(TopicId, usize)> {
        if !self.group_names_valid(id, topic, group) {
            return None;
        }
        let tid = self.topics.find(topic)?;
        let m = self.conns[id].groups.iter().find(|m| m.topic == tid)?;
        (*self.topics[tid].groups[m.group].name == *group).then_some((tid, m.group))
    }

    /// Refuses the connection and returns false if a topic or group name breaks the rules.
    fn group_names_valid(&mut self, id: ConnId, topic: &str, group: &str) -> bool {
        if let Err(e) = validate_topic(topic) {
            self.reject(id, ErrorCode::InvalidTopic, &e.to_string());
            return false;
        }
        if let Err(e) = validate_group(group) {
            let reason = format!("group {}", e.to_string().replacen("topic ", "", 1));
            self.reject(id, ErrorCode::InvalidGroup, &reason);
            return false;
        }
        true
    }

    /// Puts the members of a group that may be given messages on the ready list.
    pub(super) fn wake_members(&mut self, tid: TopicId, gidx: usize) {
        let g = &self.topics[tid].groups[gidx];
        let ready: Vec<ConnId> = (0..g.members.len())
            .filter(|&i| g.can_give(i))
            .map(|i| g.members[i].conn)
            .collect();
        for id in ready {
            self.mark(id);
        }
    }

    /// Notes that a group of `tid` changed: a durable topic saves its groups at the commit.
    fn note_group_change(&mut self, tid: TopicId) {
        let t = &mut self.topics[tid];
        if t.store.is_some() && !t.groups_uncommitted {
            t.groups_uncommitted = true;
            self.commit.groups.push(tid);
        }
    }

    /// Fills the control buffer of member `id`, which is empty, with the next messages of its
    /// groups, each an `Assign` and the `Deliver` that holds it; the groups take turns. Returns
    /// true if it put anything there.
    pub(super) fn fill_groups(&mut self, id: ConnId) -> bool {
        let n = self.conns[id].groups.len();
        let start = self.conns[id].next_group;
        let mut control = std::mem::take(&mut self.conns[id].control);
        control.clear();
        for k in 0..n {
            let m = self.conns[id].groups[(start + k) % n];
            self.fill_from(id, m, &mut control);
            if control.len() >= GROUP_CHUNK {
                self.conns[id].next_group = (start + k + 1) % n;
                break;
            }
        }
        let conn = &mut self.conns[id];
        conn.control = control;
        conn.control_data = conn.control.len();
        conn.control_sent = 0;
        !conn.control.is_empty()
    }

    /// Gives member `id` messages of one group into `out` while it has credit and `out` room.
    fn fill_from(&mut self, id: ConnId, m: Membership, out: &mut Vec<u8>) {
        let now = self.now;
        while out.len() < GROUP_CHUNK {
            let t = &self.topics[m.topic];
            let g = &t.groups[m.group];
            let Some(i) = g.member(id) else { return };
            if !g.can_give(i) {
                return;
            }
            let Some(offset) = g.next_offset(now, t.log.visible()) else {
                return;
            };
            let before = out.len();
            // The run that holds it, from memory without a copy, or read from disk.
            let t = &mut self.topics[m.topic];
            let in_memory = (offset >= t.log.first())
                .then(|| t.log.segment_of(offset))
                .flatten();
            let from_memory = in_memory.is_some();
            let frame = match in_memory {
                Some(seg) => Ok(seg.frame_first(offset)..seg.frame_end(offset)),
                None => self.disk_frame(m.topic, offset),
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(Missing::Gone) => {
                    self.lose(id, m.topic, m.group, offset, out);
                    continue;
                }
                Err(Missing::Failed(e)) => {
                    let reason = format!(
                        "cannot read topic {} from disk: {e}",
                        self.topics[m.topic].name
                    );
                    self.conns[id].control = std::mem::take(out);
                    self.reject(id, ErrorCode::Internal, &reason);
                    *out = std::mem::take(&mut self.conns[id].control);
                    return;
                }
            };
            let t = &mut self.topics[m.topic];
            let g = &mut t.groups[m.group];
            let grant = g.give(i, offset, frame.end, now);
            let deadline = now + g.settings.ack_wait;
            mbus_proto::encode_assign(
                out,
                &t.name,
                &g.name,
                grant.attempt,
                grant.first,
                grant.count,
            );
            if from_memory {
                let seg = t.log.segment_of(offset).expect("found above");
                out.extend_from_slice(&seg.buf[seg.frame_range(offset)]);
            } else {
                out.extend_from_slice(&self.scratch);
            }
            self.counters.delivered += u64::from(grant.count);
            self.counters.delivered_bytes += (out.len() - before) as u64;
            self.schedule_groups(deadline);
            self.note_group_change(m.topic);
        }
    }

    /// Reads the stored frame that holds `offset` of topic `tid` from disk into the core's
    /// scratch buffer, and returns the offsets it holds.
    fn disk_frame(&mut self, tid: TopicId, offset: u64) -> Result<std::ops::Range<u64>, Missing> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let frame = self.copy_frame(tid, offset, &mut scratch);
        self.scratch = scratch;
        frame
    }

    /// Appends to `out` the whole stored frame that holds `offset` of topic `tid`, from memory
    /// or disk, and returns the offsets it holds.
    fn copy_frame(
        &mut self,
        tid: TopicId,
        offset: u64,
        out: &mut Vec<u8>,
    ) -> Result<std::ops::Range<u64>, Missing> {
        let t = &mut self.topics[tid];
        if let Some(seg) = (offset >= t.log.first())
            .then(|| t.log.segment_of(offset))
            .flatten()
        {
            out.extend_from_slice(&seg.buf[seg.frame_range(offset)]);
            return Ok(seg.frame_first(offset)..seg.frame_end(offset));
        }
        let store = t.store.as_mut().ok_or(Missing::Gone)?;
        let start = out.len();
        match store.read(offset, 0, out) {
            Ok(_) => {
                // One frame only, whatever else the read brought.
                let frame = &out[start..];
                let len = mbus_proto::HEADER_LEN
                    + u32::from_be_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
                match Frame::parse(&frame[mbus_proto::HEADER_LEN..len]) {
                    Ok(Frame::Deliver {
                        offset: first,
                        batch,
                        ..
                    }) => {
                        let end = first + batch.len() as u64;
                        out.truncate(start + len);
                        Ok(first..end)
                    }
                    _ => {
                        out.truncate(start);
                        Err(Missing::Gone)
                    }
                }
            }
            Err(StoreError::Corrupt { .. } | StoreError::Deleted { .. }) => Err(Missing::Gone),
            Err(e) => Err(Missing::Failed(e)),
        }
    }

    /// The message at `offset`, which group `gidx` of `tid` was about to give out to `id`, is
    /// gone: the group counts it and whatever else retention removed, and every member is told
    /// by a `Gap` (`id` through `out`, its control buffer while it is filled).
    fn lose(&mut self, id: ConnId, tid: TopicId, gidx: usize, offset: u64, out: &mut Vec<u8>) {
        let first = self.topics[tid].first();
        let t = &mut self.topics[tid];
        let g = &mut t.groups[gidx];
        let mut lost = g.lose_below(first);
        // Inside what retention keeps: damaged on disk.
        if offset >= first {
            lost += u64::from(g.lose_one(offset));
        }
        let to = first.max(offset + 1);
        log::warn!(
            "group {} of topic {}: offsets {offset}..{to} are gone, {lost} of them before the \
             group was done with them",
            g.name,
            t.name
        );
        let members: Vec<ConnId> = g.members.iter().map(|m| m.conn).collect();
        let name = self.topics[tid].name.clone();
        let gap = Frame::Gap {
            topic: &name,
            from: offset,
            to,
        };
        for cid in members {
            if cid == id {
                gap.encode(out);
            } else if let Some(conn) = self.conns.get_mut(cid) {
                gap.encode(&mut conn.control);
                self.mark(cid);
            }
            self.counters.gaps += 1;
        }
        self.note_group_change(tid);
    }

    /// Publishes each of `dead` to the dead-letter topic of group `gidx` of `tid`.
    pub(super) fn dead_letter_all(&mut self, tid: TopicId, gidx: usize, dead: Vec<DeadLetter>) {
        for d in dead {
            self.dead_letter(tid, gidx, d);
        }
    }

    /// Publishes one message the group is done with unprocessed to its dead-letter topic, with
    /// headers naming where it came from and why.
    fn dead_letter(&mut self, tid: TopicId, gidx: usize, d: DeadLetter) {
        let topic = self.topics[tid].name.clone();
        let g = &self.topics[tid].groups[gidx];
        let (group, target) = (g.name.clone(), g.settings.dead_letter.clone());
        let mut frame = Vec::new();
        let message = match self.copy_frame(tid, d.offset, &mut frame) {
            Ok(_) => super::memlog::record_message(&frame, d.offset).map(|(_, m)| m),
            Err(_) => None,
        };
        let Some(message) = message else {
            log::warn!(
                "group {group} of topic {topic}: offset {} is gone and cannot be dead-lettered",
                d.offset
            );
            return;
        };
        let offset = d.offset.to_string();
        let attempts = d.attempts.to_string();
        let ours: [(&str, &[u8]); 5] = [
            ("mbus-topic", topic.as_bytes()),
            ("mbus-offset", offset.as_bytes()),
            ("mbus-group", group.as_bytes()),
            ("mbus-attempts", attempts.as_bytes()),
            ("mbus-reason", d.reason.as_str().as_bytes()),
        ];
        let mut headers: Vec<(&str, &[u8])> = message.headers.iter().collect();
        headers.extend(ours);
        let mut batch = BatchBuilder::new();
        if batch.push(message.data, &headers).is_err() {
            batch = BatchBuilder::new();
            batch
                .push(message.data, &ours)
                .expect("the dead-letter headers are within the limits");
        }
        let batch = batch.batch().expect("one message");
        let result = self.dead_letter_topic(&target).and_then(|dlq| {
            self.append_batch(dlq, &batch, None)
                .map_err(|e| format!("{e:?}"))
        });
        match result {
            Ok(at) => log::debug!(
                "group {group} of topic {topic}: offset {} dead-lettered to {target} at {at} ({})",
                d.offset,
                d.reason.as_str()
            ),
            Err(e) => log::error!(
                "group {group} of topic {topic}: cannot dead-letter offset {} to {target}: {e}",
                d.offset
            ),
        }
    }

    /// The dead-letter topic `name`, created if it is new.
    fn dead_letter_topic(&mut self, name: &str) -> Result<TopicId, String> {
        if let Some(tid) = self.topics.find(name) {
            return Ok(tid);
        }
        if self.topics.len() >= self.config.max_topics {
            return Err(format!(
                "the broker is at its limit of {} topics",
                self.config.max_topics
            ));
        }
        self.topics
            .get_or_create(name, true)
            .map_err(|e| e.to_string())
    }

    /// Fires what is due in every group: messages held past their ack wait are given out again
    /// or dead-lettered, and members are woken for redeliveries that became due.
    pub(super) fn expire_groups(&mut self) {
        let now = self.now;
        let mut next: Option<std::time::Instant> = None;
        for (tid, gidx) in self.group_ids() {
            let g = &mut self.topics[tid].groups[gidx];
            let due = g.next_wake().is_some_and(|t| t <= now);
            if due {
                let dead = g.expire(now);
                self.dead_letter_all(tid, gidx, dead);
                self.note_group_change(tid);
                self.wake_members(tid, gidx);
            }
            // Redeliveries already due wait for a member's credit, not for the timer.
            let g = &self.topics[tid].groups[gidx];
            if let Some(t) = g.next_wake().filter(|&t| t > now) {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        self.timers.groups = next;
    }

    /// Every group of every topic.
    fn group_ids(&self) -> Vec<(TopicId, usize)> {
        self.topics
            .iter_ids()
            .flat_map(|(tid, t)| (0..t.groups.len()).map(move |g| (tid, g)))
            .collect()
    }

    /// Makes sure the group timer fires no later than `at`.
    pub(super) fn schedule_groups(&mut self, at: std::time::Instant) {
        self.timers.groups = Some(self.timers.groups.map_or(at, |t| t.min(at)));
    }

    /// Saves the groups of every durable topic that changed since the last commit. Called by
    /// the commit after the topics' own, so a dead letter is durable before the group forgets
    /// the message.
    pub(super) fn save_groups(&mut self) {
        let batch_sync = self
            .topics
            .storage()
            .is_some_and(|s| s.sync_interval().is_some());
        for tid in std::mem::take(&mut self.commit.groups) {
            let t = &mut self.topics[tid];
            t.groups_uncommitted = false;
            if batch_sync && !t.unsynced {
                t.unsynced = true;
                self.commit.unsynced.push(tid);
            }
            let Some(store) = t.store.as_mut() else {
                continue;
            };
            for g in t.groups.iter_mut().filter(|g| g.dirty) {
                let state = super::group_state::encode(&g.snapshot());
                match store.save_group(&g.name, &state) {
                    Ok(()) => g.dirty = false,
                    Err(e) => log::error!(
                        "topic {}: cannot save group {}: {e}; it is saved again at the next commit",
                        t.name,
                        g.name
                    ),
                }
            }
            if t.groups.iter().any(|g| g.dirty) && !t.groups_uncommitted {
                t.groups_uncommitted = true;
                self.commit.groups.push(tid);
            }
        }
    }

    /// Restores the groups saved with durable topic `tid`, at start.
    pub(super) fn restore_groups(&mut self, tid: TopicId) {
        let now = self.now;
        let t = &mut self.topics[tid];
        let Some(store) = t.store.as_mut() else {
            return;
        };
        let saved = match store.groups() {
            Ok(saved) => saved,
            Err(e) => {
                log::error!("topic {}: cannot read its groups: {e}", t.name);
                return;
            }
        };
        let next = store.next();
        let topic = t.name.clone();
        for (name, bytes) in saved {
            let mut snapshot = match super::group_state::decode(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    log::error!("topic {topic}: group {name} cannot be restored: {e}");
                    continue;
                }
            };
            // A power loss may have taken messages the group had already given out.
            snapshot.next = snapshot.next.min(next);
            snapshot.floor = snapshot.floor.min(snapshot.next);
            let (g, dead) = Group::restore(&name, snapshot, Some(now));
            log::info!(
                "topic {topic}: restored group {name} at offset {} ({} to give out again)",
                g.floor(),
                g.waiting()
            );
            let t = &mut self.topics[tid];
            if t.groups.len() < MAX_GROUPS_PER_TOPIC {
                t.groups.push(g);
                let gidx = t.groups.len() - 1;
                self.dead_letter_all(tid, gidx, dead);
                self.note_group_change(tid);
            }
        }
    }
}

/// A duration in whole milliseconds, for the wire.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
