//! Partitions read side by side, kept together in publish time.
//!
//! Left alone, the readers of one write stream drift apart: the broker serves one partition
//! faster than another, and a batch then holds the first records of one partition beside
//! much later ones of another. A producer that spreads its keys over the partitions
//! (round-robin, or by key hash) gives each partition keys from the whole range, so a
//! drifting batch carries sparse keys that later batches fill in between: InnoDB splits its
//! pages in half instead of appending, and loads the same rows slower into a larger table
//! (BENCHMARKS.md, "Key order"). In lockstep, a batch covers one stretch of publish time on
//! every partition, and its rows, sorted by the table's key (`sink::key_order`), append.
//!
//! A reader holding a message waits while another reader of the stream holds one published
//! more than [`SLACK_MS`] earlier. A reader waiting for the broker still holds the others
//! back from its last message's publish time, for at most [`WAIT_HOLD`]: its next messages
//! are on their way, and readers running ahead of it meanwhile fill a batch with keys its
//! rows then land between (16 partitions: tables of 52-105 MiB instead of 41). A reader done
//! holds nobody back; the reader with the oldest message never waits, so the stream always
//! moves. The order only decides speed, never what is written.

use std::sync::Mutex;
use std::task::{Poll, Waker};

use tokio::time::{Duration, Instant};

/// How far in publish time (ms) a reader may run ahead of the slowest reader holding a
/// message.
pub(super) const SLACK_MS: i64 = 10;

/// Beyond this (ms), a reader ahead is not held back: the partitions' data differ in time
/// (a burst on one, a producer started late), not the readers' pace, and waiting would read
/// the partitions one at a time.
pub(super) const MAX_SKEW_MS: i64 = 1_000;

/// How long the first readers wait for each other's first message: a partition whose first
/// message comes a few milliseconds late (its subscription, its first Flow) would otherwise
/// start behind all the others.
const START_GRACE: Duration = Duration::from_millis(100);

/// How long a reader waiting for the broker still holds the others back: long enough for a
/// broker busy with the other partitions to serve it (a read of up to 100 entries), short
/// enough that a partition it is slow on costs the stream little.
pub(super) const WAIT_HOLD: Duration = Duration::from_millis(250);

/// The publish time of the message each reader holds, and the readers waiting for their turn.
pub(super) struct Lockstep {
    state: Mutex<State>,
    /// Until then, readers wait for the first `starting` partitions to hold a message.
    start_by: Instant,
}

struct State {
    heads: Vec<Head>,
    /// Partitions of the first wave not heard from yet.
    starting: usize,
    /// Partitions heard from (held a message, or waited for the broker).
    heard: Vec<i32>,
    /// Since when readers holding messages have waited for a partition the broker has not
    /// served yet (its hold), if they do now; and for how long they did before.
    held_since: Option<Instant>,
    held: Duration,
}

/// One reader holding a message, or waiting for the broker's next one.
struct Head {
    partition: i32,
    /// Of the message it holds (or consumed last, while it waits for the broker).
    publish_time: i64,
    /// While it waits for the broker: until when it still holds the others back.
    waiting_until: Option<Instant>,
    /// Set while it waits for its turn.
    waker: Option<Waker>,
}

impl Head {
    /// Whether it bounds the others at `now`.
    fn holds(&self, now: Instant) -> bool {
        self.waiting_until.is_none_or(|until| now < until)
    }
}

/// Whether a reader may go, or must wait (and until when at most).
enum Turn {
    Go,
    Wait(Option<Instant>),
}

impl Lockstep {
    /// For a stream whose first `starting` partitions start reading now.
    pub(super) fn new(starting: usize) -> Lockstep {
        Lockstep {
            state: Mutex::new(State {
                heads: Vec::new(),
                starting,
                heard: Vec::new(),
                held_since: None,
                held: Duration::ZERO,
            }),
            start_by: Instant::now() + START_GRACE,
        }
    }

    /// Partition `partition` holds a message published at `publish_time`: returns once no
    /// reader holds one older by more than [`SLACK_MS`] (and at most [`MAX_SKEW_MS`]). One
    /// lock per message; a reader is woken only when its turn has come.
    pub(super) async fn turn(&self, partition: i32, publish_time: i64) {
        let mut noted = false;
        loop {
            let deadline = match self.check(partition, publish_time, &mut noted, None) {
                Turn::Go => return,
                Turn::Wait(deadline) => deadline,
            };
            let woken = std::future::poll_fn(|cx| {
                match self.check(partition, publish_time, &mut noted, Some(cx.waker())) {
                    Turn::Go => Poll::Ready(()),
                    // A reader began waiting for the broker: its hold's end is a new deadline.
                    Turn::Wait(now) if now != deadline => Poll::Ready(()),
                    Turn::Wait(_) => Poll::Pending,
                }
            });
            match deadline {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, woken).await;
                }
                None => woken.await,
            }
        }
    }

    /// Partition `partition` waits for the broker: it holds the others back from its last
    /// message for at most [`WAIT_HOLD`] more.
    pub(super) fn waiting(&self, partition: i32) {
        let mut state = self.state.lock().expect("lockstep lock");
        let now = Instant::now();
        state.heard_from(partition);
        if let Some(head) = state.heads.iter_mut().find(|h| h.partition == partition) {
            head.waiting_until = Some(now + WAIT_HOLD);
        }
        // Whoever waits for its turn now waits at most until the hold ends: they look again
        // to take that deadline.
        for head in &mut state.heads {
            if let Some(waker) = head.waker.take() {
                waker.wake();
            }
        }
        state.account(now);
    }

    /// Partition `partition` is done: it holds nobody back.
    pub(super) fn done(&self, partition: i32) {
        let mut state = self.state.lock().expect("lockstep lock");
        let now = Instant::now();
        let before = oldest(&state.heads, now);
        state.heads.retain(|h| h.partition != partition);
        state.heard_from(partition);
        wake_those_due(&mut state.heads, before, now);
        state.account(now);
    }

    /// How long readers holding messages waited for a partition the broker had not served
    /// yet (wall time, within its holds): the part of the stream's input waits the lockstep
    /// adds, for the run's time budget.
    pub(super) fn held(&self) -> Duration {
        let state = self.state.lock().expect("lockstep lock");
        let now = Instant::now();
        state.held + state.held_since.map_or(Duration::ZERO, |since| now - since)
    }

    fn check(
        &self,
        partition: i32,
        publish_time: i64,
        noted: &mut bool,
        waker: Option<&Waker>,
    ) -> Turn {
        let mut state = self.state.lock().expect("lockstep lock");
        let state = &mut *state;
        let now = Instant::now();
        let before = oldest(&state.heads, now);
        let at = match state.heads.iter().position(|h| h.partition == partition) {
            Some(at) => at,
            None => {
                state.heads.push(Head {
                    partition,
                    publish_time,
                    waiting_until: None,
                    waker: None,
                });
                state.heads.len() - 1
            }
        };
        if !*noted {
            *noted = true;
            state.heads[at].publish_time = publish_time;
            state.heads[at].waiting_until = None;
            state.heard_from(partition);
            wake_those_due(&mut state.heads, before, now);
        }
        let starting = state.starting > 0 && now < self.start_by;
        let behind = publish_time - oldest(&state.heads, now);
        let turn = if starting {
            Turn::Wait(Some(self.start_by))
        } else if behind <= SLACK_MS || behind > MAX_SKEW_MS {
            Turn::Go
        } else {
            // A reader waiting for the broker holds it back only until its hold ends.
            Turn::Wait(
                state
                    .heads
                    .iter()
                    .filter(|h| h.holds(now))
                    .filter_map(|h| h.waiting_until)
                    .min(),
            )
        };
        state.heads[at].waker = match turn {
            Turn::Go => None,
            Turn::Wait(_) => waker.cloned(),
        };
        state.account(now);
        turn
    }
}

impl State {
    /// Starts or ends the count of [`Lockstep::held`]: some reader waits for its turn, and
    /// the oldest message bounding it is that of a partition waiting for the broker.
    /// One pass over the heads: it runs at every turn.
    fn account(&mut self, now: Instant) {
        let mut someone_waits = false;
        let mut bounding: Option<&Head> = None;
        for head in &self.heads {
            someone_waits |= head.waker.is_some();
            if head.holds(now) && bounding.is_none_or(|b| head.publish_time < b.publish_time) {
                bounding = Some(head);
            }
        }
        let held = someone_waits && bounding.is_some_and(|h| h.waiting_until.is_some());
        match (held, self.held_since) {
            (true, None) => self.held_since = Some(now),
            (false, Some(since)) => {
                self.held += now - since;
                self.held_since = None;
            }
            _ => {}
        }
    }

    /// A partition of the first wave held its first message, or went idle.
    fn heard_from(&mut self, partition: i32) {
        if self.starting == 0 || self.heard.contains(&partition) {
            return;
        }
        self.heard.push(partition);
        self.starting -= 1;
        if self.starting == 0 {
            // The last of the first wave: whoever waited for it may look again.
            for head in &mut self.heads {
                if let Some(w) = head.waker.take() {
                    w.wake();
                }
            }
        }
    }
}

/// The oldest publish time that bounds the others at `now`, or the latest possible when none
/// does.
fn oldest(heads: &[Head], now: Instant) -> i64 {
    heads
        .iter()
        .filter(|h| h.holds(now))
        .map(|h| h.publish_time)
        .min()
        .unwrap_or(i64::MAX)
}

/// Wakes the waiting readers whose turn came since the oldest publish time was `before`.
fn wake_those_due(heads: &mut [Head], before: i64, now: Instant) {
    let oldest = oldest(heads, now);
    if oldest <= before {
        return;
    }
    let due = oldest.saturating_add(SLACK_MS);
    for head in heads.iter_mut().filter(|h| h.publish_time <= due) {
        if let Some(waker) = head.waker.take() {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// Whether `turn` returns within a short while.
    async fn goes(l: &Arc<Lockstep>, partition: i32, t: i64) -> bool {
        tokio::time::timeout(Duration::from_millis(50), l.turn(partition, t))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_reader_ahead_waits_for_the_oldest_to_move_or_finish() {
        let l = Arc::new(Lockstep::new(0));
        assert!(goes(&l, 0, 1_000).await, "alone, a reader always goes");
        assert!(goes(&l, 1, 1_000 + SLACK_MS).await, "within the slack");
        let ahead = tokio::spawn({
            let l = l.clone();
            async move { l.turn(1, 2_000).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !ahead.is_finished(),
            "partition 0 holds a message 1 s older"
        );
        assert!(goes(&l, 0, 1_500).await, "the oldest never waits");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!ahead.is_finished(), "still 0.5 s behind");
        l.done(0);
        tokio::time::timeout(Duration::from_secs(1), ahead)
            .await
            .expect("a reader done holds nobody back")
            .unwrap();
    }

    #[tokio::test]
    async fn a_reader_waiting_for_the_broker_holds_the_others_back_a_while() {
        let l = Arc::new(Lockstep::new(0));
        assert!(goes(&l, 0, 1_000).await);
        l.waiting(0);
        let started = Instant::now();
        let ahead = tokio::spawn({
            let l = l.clone();
            async move { l.turn(1, 1_500).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !ahead.is_finished(),
            "partition 0's next messages are on their way: reading ahead of them would \
             split the table's pages"
        );
        tokio::time::timeout(WAIT_HOLD * 5, ahead)
            .await
            .expect("a partition the broker is slow to serve holds nobody back for long")
            .unwrap();
        assert!(started.elapsed() >= WAIT_HOLD - Duration::from_millis(5));
        // Its next message makes it a reader holding one again.
        let l = Arc::new(Lockstep::new(0));
        assert!(goes(&l, 0, 1_000).await);
        l.waiting(0);
        let ahead = tokio::spawn({
            let l = l.clone();
            async move { l.turn(1, 1_500).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(goes(&l, 0, 1_495).await, "the oldest never waits");
        tokio::time::timeout(Duration::from_millis(50), ahead)
            .await
            .expect("within the slack of the oldest again")
            .unwrap();
    }

    #[tokio::test]
    async fn a_reader_already_waiting_when_the_oldest_goes_to_the_broker_waits_only_the_hold() {
        let l = Arc::new(Lockstep::new(0));
        assert!(goes(&l, 0, 1_000).await);
        let ahead = tokio::spawn({
            let l = l.clone();
            async move { l.turn(1, 1_500).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!ahead.is_finished(), "partition 0 holds an older message");
        // Partition 0's next message never comes (a broker that stopped answering).
        l.waiting(0);
        tokio::time::timeout(WAIT_HOLD * 5, ahead)
            .await
            .expect("the hold ends for a reader that was waiting before it began")
            .unwrap();
    }

    #[tokio::test]
    async fn partitions_whose_data_differ_in_time_are_not_held_back() {
        let l = Arc::new(Lockstep::new(0));
        assert!(goes(&l, 0, 0).await);
        assert!(goes(&l, 1, MAX_SKEW_MS + 1).await);
    }

    #[tokio::test]
    async fn the_first_readers_wait_for_each_other_a_short_while() {
        let l = Arc::new(Lockstep::new(2));
        let first = tokio::spawn({
            let l = l.clone();
            async move { l.turn(0, 5).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!first.is_finished(), "partition 1 has not been heard from");
        assert!(goes(&l, 1, 0).await, "the first wave is complete");
        tokio::time::timeout(Duration::from_secs(1), first)
            .await
            .expect("the second partition's message lets the first look again")
            .unwrap();
        // Nobody waits past the grace for a partition that never shows up.
        let l = Arc::new(Lockstep::new(2));
        let started = Instant::now();
        l.turn(0, 0).await;
        assert!(started.elapsed() >= START_GRACE - Duration::from_millis(5));
        assert!(started.elapsed() < START_GRACE * 5);
    }

    #[tokio::test]
    async fn the_oldest_catching_up_lets_the_others_go() {
        let l = Arc::new(Lockstep::new(0));
        assert!(goes(&l, 0, 0).await);
        let ahead = tokio::spawn({
            let l = l.clone();
            async move { l.turn(1, 100).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!ahead.is_finished());
        assert!(goes(&l, 0, 100 - SLACK_MS).await);
        tokio::time::timeout(Duration::from_secs(1), ahead)
            .await
            .expect("within the slack of the oldest")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_readers_are_held_by_a_partition_the_broker_has_not_served_is_counted() {
        let l = Arc::new(Lockstep::new(0));
        assert!(goes(&l, 0, 1_000).await);
        assert_eq!(l.held(), Duration::ZERO, "nobody waited");
        l.waiting(0);
        let ahead = tokio::spawn({
            let l = l.clone();
            async move { l.turn(1, 1_500).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let so_far = l.held();
        assert!(
            so_far >= Duration::from_millis(99) && so_far <= Duration::from_millis(101),
            "partition 1 has waited for partition 0's next message for 100 ms: {so_far:?}"
        );
        assert!(goes(&l, 0, 1_495).await, "partition 0's next message comes");
        ahead.await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let held = l.held();
        assert!(
            held <= Duration::from_millis(101),
            "the hold ended: {held:?}"
        );
        // Waiting behind a reader that holds a message is the stream moving, not a hold.
        let behind = tokio::spawn({
            let l = l.clone();
            async move { l.turn(1, 1_700).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!behind.is_finished());
        assert_eq!(l.held(), held, "partition 0 holds a message and reads on");
        assert!(goes(&l, 0, 1_695).await);
        behind.await.unwrap();
        // A hold that runs out ends the count with it.
        l.waiting(0);
        let ahead = tokio::spawn({
            let l = l.clone();
            async move { l.turn(1, 1_900).await }
        });
        tokio::time::sleep(WAIT_HOLD * 2).await;
        ahead.await.unwrap();
        let total = l.held() - held;
        assert!(
            total >= WAIT_HOLD - Duration::from_millis(1)
                && total <= WAIT_HOLD + Duration::from_millis(5),
            "held for the hold, not longer: {total:?}"
        );
    }
}
