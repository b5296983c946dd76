//! The playout queue towards Asterisk: audio from the backend is re-framed, queued, and
//! released one 20 ms frame at a time on tokio's clock, with the backend's marks kept in
//! their place between the frames.
//!
//! Bots send in bursts (Pipecat sends 40 ms chunks in real time, others a whole sentence at
//! once); Asterisk wants audio at real time, in whole frames. The queue adds no delay of its
//! own: the first frame of a talk spurt is released the moment it is complete, and every
//! later one 20 ms after the one before. When the consumer falls behind (a stall of the
//! task, or audio that arrives a little late), it catches up, but releases at most
//! [`Playout::max_burst`] frames at once; the rest of the lag is dropped from the schedule
//! rather than bursted into Asterisk. A talk spurt ends when nothing has come for the next
//! frame's slot within that catch-up window; the next audio starts a new spurt at once.
//!
//! A mark is released as soon as all the audio queued before it has been released
//! ("played", as far as the gateway can tell; chan_websocket's own `MARK_MEDIA` is finer).
//! [`Playout::clear`] (the backend's barge-in `clear`) drops the queued audio at once and
//! hands back the marks that were still waiting, which the gateway answers itself, as
//! Twilio does.
//!
//! The queue itself never reads a clock: [`Playout::poll`] takes the time, so the logic is
//! tested with plain instants. [`Playout::next`] is the async form for a `select!` loop.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::frames::Reframer;
use super::{AudioFormat, FRAME_DURATION};

/// Frames released back to back at most after a stall, by default.
pub const DEFAULT_MAX_BURST: u32 = 3;

/// Frames queued at most, by default (60 s); audio beyond it is dropped and counted.
pub const DEFAULT_MAX_FRAMES: usize = 3000;

/// How far ahead of its due time [`Playout::next`] may release a frame: tokio's timer
/// resolution.
pub const TIMER_SLACK: Duration = Duration::from_millis(1);

/// What the queue releases, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<M> {
    /// One whole 20 ms frame to send to Asterisk now.
    Frame {
        /// The frame, exactly [`AudioFormat::frame_bytes`] long.
        audio: Bytes,
        /// The first frame after silence (or after a clear): RTP sets its marker bit.
        spurt_start: bool,
    },
    /// A mark whose preceding audio has all been released.
    Mark(M),
}

#[derive(Debug)]
enum Entry<M> {
    Frame(Bytes),
    Mark(M),
}

/// A paced playout queue of frames and marks (`M`: the mark's name or whatever the caller
/// needs to answer it).
#[derive(Debug)]
pub struct Playout<M> {
    reframer: Reframer,
    queue: VecDeque<Entry<M>>,
    frames: usize,
    marks: usize,
    /// When the next frame is due; `None` between talk spurts.
    next_due: Option<Instant>,
    max_burst: u32,
    max_frames: usize,
    dropped: u64,
    /// The due time of the last frame released.
    last_due: Option<Instant>,
    /// When the front frame arrived, if it was pushed into a queue without frames
    /// ([`Playout::push_audio_at`]). Only such a frame can arrive after its slot: one
    /// queued behind others is due after them. Kept for it alone, not per frame, so the
    /// queue's entries stay as small as they were.
    front_arrival: Option<Instant>,
}

impl<M> Playout<M> {
    /// An empty queue for frames of `format`.
    pub fn new(format: AudioFormat) -> Self {
        Self {
            reframer: Reframer::new(format),
            queue: VecDeque::with_capacity(64),
            frames: 0,
            marks: 0,
            next_due: None,
            max_burst: DEFAULT_MAX_BURST,
            max_frames: DEFAULT_MAX_FRAMES,
            dropped: 0,
            last_due: None,
            front_arrival: None,
        }
    }

    /// Sets how many frames may be released back to back when catching up after a stall
    /// (at least 1).
    pub fn with_max_burst(mut self, frames: u32) -> Self {
        self.max_burst = frames.max(1);
        self
    }

    /// Sets how many frames may be queued (at least 1); audio beyond it is dropped.
    pub fn with_max_frames(mut self, frames: usize) -> Self {
        self.max_frames = frames.max(1);
        self
    }

    /// The format of the frames.
    pub fn format(&self) -> AudioFormat {
        self.reframer.format()
    }

    /// How many frames may be released back to back after a stall.
    pub fn max_burst(&self) -> u32 {
        self.max_burst
    }

    /// Queues audio of any length; whole frames become due, a partial last frame waits for
    /// the next chunk (or for a mark, which completes it with silence).
    pub fn push_audio(&mut self, audio: &[u8]) {
        self.reframer.push(audio);
        self.take_frames();
    }

    /// [`push_audio`](Self::push_audio) of audio that arrived at `at`: no frame it
    /// completes is due before then ([`Playout::last_due`]).
    pub fn push_audio_at(&mut self, audio: &[u8], at: Instant) {
        let had_frames = self.frames > 0;
        self.push_audio(audio);
        if !had_frames && self.frames > 0 {
            self.front_arrival = Some(at);
        }
    }

    /// Queues a mark after all the audio pushed so far; a partial last frame is completed
    /// with silence so that the mark follows whole frames.
    pub fn push_mark(&mut self, mark: M) {
        self.reframer.pad_to_frame();
        self.take_frames();
        self.queue.push_back(Entry::Mark(mark));
        self.marks += 1;
    }

    fn take_frames(&mut self) {
        while let Some(frame) = self.reframer.next_frame() {
            if self.frames >= self.max_frames {
                self.dropped += 1;
                continue;
            }
            self.queue.push_back(Entry::Frame(frame));
            self.frames += 1;
        }
    }

    /// Drops all queued audio (and a partial frame) at once and returns the marks that were
    /// waiting, in order; the next frame starts a new talk spurt.
    pub fn clear(&mut self) -> Vec<M> {
        self.reframer.clear();
        let mut marks = Vec::with_capacity(self.marks);
        for entry in self.queue.drain(..) {
            if let Entry::Mark(mark) = entry {
                marks.push(mark);
            }
        }
        self.frames = 0;
        self.marks = 0;
        self.next_due = None;
        self.front_arrival = None;
        marks
    }

    /// Whole frames queued.
    pub fn queued_frames(&self) -> usize {
        self.frames
    }

    /// How long the queued frames play.
    pub fn queued_duration(&self) -> Duration {
        FRAME_DURATION * self.frames as u32
    }

    /// Marks queued.
    pub fn pending_marks(&self) -> usize {
        self.marks
    }

    /// Whether nothing is queued (a partial frame may still wait for more audio).
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// When the last frame released was due: its slot on the pacing grid, or the time its
    /// audio arrived ([`Playout::push_audio_at`]) if later. Sending it after that is
    /// delay the gateway added (the gateway's added latency toward Asterisk).
    pub fn last_due(&self) -> Option<Instant> {
        self.last_due
    }

    /// Frames dropped because the queue was full, since it was made.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// The next item due at `now`, if any; call again until `None` (a burst of catch-up
    /// frames, or a frame followed by its mark, comes out at one instant).
    pub fn poll(&mut self, now: Instant) -> Option<Output<M>> {
        match self.queue.front() {
            None => {
                // Nothing arrived in time for the next frame, nor within the catch-up
                // window after it: the talk spurt is over, the next audio starts a new one
                // at once. (Audio that comes within the window continues the spurt.)
                if self
                    .next_due
                    .is_some_and(|due| now >= due + self.catch_up_window())
                {
                    self.next_due = None;
                }
                None
            }
            Some(Entry::Mark(_)) => match self.queue.pop_front() {
                Some(Entry::Mark(mark)) => {
                    self.marks -= 1;
                    Some(Output::Mark(mark))
                }
                _ => None,
            },
            Some(Entry::Frame(_)) => {
                let spurt_start = match self.next_due {
                    None => {
                        self.next_due = Some(now);
                        true
                    }
                    Some(due) if now < due => return None,
                    Some(due) => {
                        // Behind schedule: catch up, but by no more than `max_burst` frames.
                        let window = self.catch_up_window();
                        if now - due > window {
                            self.next_due = Some(now - window);
                        }
                        false
                    }
                };
                let Some(Entry::Frame(audio)) = self.queue.pop_front() else {
                    return None;
                };
                self.frames -= 1;
                // Its slot, or when it arrived if that is later: a frame the backend sent
                // late is due on arrival, not at the slot it missed.
                self.last_due = self.next_due.max(self.front_arrival.take());
                self.next_due = self.next_due.map(|due| due + FRAME_DURATION);
                Some(Output::Frame { audio, spurt_start })
            }
        }
    }

    /// How far behind schedule the queue may be and still catch up in full.
    fn catch_up_window(&self) -> Duration {
        FRAME_DURATION * (self.max_burst - 1)
    }

    /// When [`poll`](Self::poll) has something to do next: the next frame's time, the end
    /// of a talk spurt, or `None` when it has nothing to wait for until more is pushed.
    pub fn deadline(&self) -> Option<Instant> {
        match self.queue.front() {
            Some(Entry::Mark(_)) => Some(Instant::now()),
            Some(Entry::Frame(_)) => Some(self.next_due.unwrap_or_else(Instant::now)),
            None => self.next_due.map(|due| due + self.catch_up_window()),
        }
    }

    /// Waits, on tokio's clock, for the next item and returns it; pending forever while
    /// the queue is empty. Cancel-safe: nothing is taken from the queue until it returns,
    /// so it can be a branch of a `select!` loop whose other branches push audio.
    ///
    /// tokio's timers have a resolution of 1 ms and fire late, never early (a sleep ends
    /// at the first millisecond tick at or after its deadline, plus the wake-up), so
    /// waiting for a paced frame's exact due time would release it 1 to 2 ms late. `next`
    /// wakes [`TIMER_SLACK`] ahead of a paced frame instead and releases it then, if it is
    /// due within the slack: a frame leaves within about a millisecond of its slot, on
    /// either side, and the schedule itself stays on the 20 ms grid (it is anchored on
    /// the actual time of each spurt's first frame).
    pub async fn next(&mut self) -> Output<M> {
        loop {
            let now = Instant::now();
            if let Some(output) = self.poll(now) {
                return output;
            }
            if let Some(output) = self.poll_paced_early(now) {
                return output;
            }
            let wake = match (self.queue.front(), self.next_due) {
                // A paced frame: wake ahead of it (and release it above).
                (Some(Entry::Frame(_)), Some(due)) => {
                    Some(due.checked_sub(TIMER_SLACK).unwrap_or(due))
                }
                // The end of a spurt (or nothing to do): no need to be early.
                _ => self.deadline(),
            };
            match wake {
                Some(wake) => tokio::time::sleep_until(wake).await,
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// The paced frame at the front when it is due within [`TIMER_SLACK`] of `now`,
    /// released as at its due time (the grid does not move).
    fn poll_paced_early(&mut self, now: Instant) -> Option<Output<M>> {
        match (self.queue.front(), self.next_due) {
            (Some(Entry::Frame(_)), Some(due)) if due > now && due <= now + TIMER_SLACK => {
                self.poll(due)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Duration = FRAME_DURATION;

    fn frame(byte: u8) -> Vec<u8> {
        vec![byte; AudioFormat::Ulaw.frame_bytes()]
    }

    fn released(output: Option<Output<&'static str>>) -> Option<(u8, bool)> {
        match output {
            Some(Output::Frame { audio, spurt_start }) => Some((audio[0], spurt_start)),
            Some(Output::Mark(mark)) => panic!("unexpected mark {mark}"),
            None => None,
        }
    }

    #[test]
    fn first_frame_at_once_then_one_per_20_ms() {
        let t0 = Instant::now();
        let mut playout = Playout::<&str>::new(AudioFormat::Ulaw);
        assert_eq!(playout.poll(t0), None);
        for byte in 1..=3 {
            playout.push_audio(&frame(byte));
        }
        assert_eq!(released(playout.poll(t0)), Some((1, true)));
        assert_eq!(released(playout.poll(t0)), None);
        assert_eq!(
            released(playout.poll(t0 + F - Duration::from_millis(1))),
            None
        );
        assert_eq!(released(playout.poll(t0 + F)), Some((2, false)));
        assert_eq!(released(playout.poll(t0 + F)), None);
        assert_eq!(released(playout.poll(t0 + 2 * F)), Some((3, false)));
        assert!(playout.is_empty());
    }

    #[test]
    fn a_frame_is_due_at_its_slot_or_on_arrival_if_later() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut playout = Playout::<&str>::new(AudioFormat::Ulaw);
        // 40 ms at once: the first frame is due when released, the second on its slot.
        let mut chunk = frame(1);
        chunk.extend(frame(2));
        playout.push_audio_at(&chunk, t0);
        assert_eq!(released(playout.poll(t0 + ms(1))), Some((1, true)));
        assert_eq!(playout.last_due(), Some(t0 + ms(1)));
        // Released 4 ms after its slot: 4 ms the gateway added.
        assert_eq!(released(playout.poll(t0 + ms(25))), Some((2, false)));
        assert_eq!(playout.last_due(), Some(t0 + ms(21)));
        // The backend's next frame comes 9 ms after its slot: due when it came.
        playout.push_audio_at(&frame(3), t0 + ms(50));
        assert_eq!(released(playout.poll(t0 + ms(50))), Some((3, false)));
        assert_eq!(playout.last_due(), Some(t0 + ms(50)));
    }

    #[test]
    fn audio_arriving_in_time_continues_the_spurt() {
        // Pipecat: 40 ms every 40 ms, a little late now and then.
        let t0 = Instant::now();
        let mut playout = Playout::<&str>::new(AudioFormat::Ulaw);
        playout.push_audio(&[frame(1), frame(2)].concat());
        assert_eq!(released(playout.poll(t0)), Some((1, true)));
        assert_eq!(released(playout.poll(t0 + F)), Some((2, false)));
        // The next chunk arrives 3 ms before frame 3 is due.
        let arrival = t0 + 2 * F - Duration::from_millis(3);
        playout.push_audio(&[frame(3), frame(4)].concat());
        assert_eq!(released(playout.poll(arrival)), None);
        assert_eq!(released(playout.poll(t0 + 2 * F)), Some((3, false)));
        // The next chunk is 5 ms late: released on arrival, the schedule is kept.
        assert_eq!(released(playout.poll(t0 + 3 * F)), Some((4, false)));
        let late = t0 + 4 * F + Duration::from_millis(5);
        playout.push_audio(&[frame(5), frame(6)].concat());
        assert_eq!(released(playout.poll(late)), Some((5, false)));
        assert_eq!(released(playout.poll(late)), None);
        assert_eq!(released(playout.poll(t0 + 5 * F)), Some((6, false)));
    }

    #[test]
    fn silence_ends_the_spurt_and_the_next_audio_starts_at_once() {
        let t0 = Instant::now();
        let mut playout = Playout::<&str>::new(AudioFormat::Ulaw);
        playout.push_audio(&frame(1));
        assert_eq!(released(playout.poll(t0)), Some((1, true)));
        // Nothing came for frame 2's slot, nor within the catch-up window (40 ms) after
        // it: the spurt ends there.
        assert_eq!(playout.deadline(), Some(t0 + 3 * F));
        assert_eq!(released(playout.poll(t0 + F)), None);
        assert_eq!(playout.deadline(), Some(t0 + 3 * F));
        assert_eq!(released(playout.poll(t0 + 3 * F)), None);
        assert_eq!(playout.deadline(), None);
        let later = t0 + Duration::from_millis(1234);
        playout.push_audio(&[frame(2), frame(3)].concat());
        assert_eq!(released(playout.poll(later)), Some((2, true)));
        assert_eq!(released(playout.poll(later)), None);
        assert_eq!(released(playout.poll(later + F)), Some((3, false)));
    }

    #[test]
    fn a_stall_is_caught_up_without_bursting_more_than_max_burst() {
        let t0 = Instant::now();
        let mut playout = Playout::<&str>::new(AudioFormat::Ulaw).with_max_burst(3);
        for byte in 0..20 {
            playout.push_audio(&frame(byte));
        }
        assert_eq!(released(playout.poll(t0)), Some((0, true)));
        // The consumer stalls for 200 ms (10 frames' worth).
        let stall = t0 + 10 * F;
        let mut burst = Vec::new();
        while let Some((byte, spurt_start)) = released(playout.poll(stall)) {
            assert!(!spurt_start);
            burst.push(byte);
        }
        assert_eq!(burst, [1, 2, 3]);
        // Then real time again from the stall on.
        assert_eq!(
            released(playout.poll(stall + F - Duration::from_millis(1))),
            None
        );
        assert_eq!(released(playout.poll(stall + F)), Some((4, false)));
        assert_eq!(released(playout.poll(stall + 2 * F)), Some((5, false)));
        // A small lag (30 ms) is caught up in full.
        let lag = stall + 3 * F + Duration::from_millis(30);
        assert_eq!(released(playout.poll(lag)), Some((6, false)));
        assert_eq!(released(playout.poll(lag)), Some((7, false)));
        assert_eq!(released(playout.poll(lag)), None);
    }

    /// Frames 1 and 2, mark `a`, frame 3, mark `b`.
    fn frames_and_marks() -> Playout<&'static str> {
        let mut playout = Playout::new(AudioFormat::Ulaw);
        playout.push_audio(&[frame(1), frame(2)].concat());
        playout.push_mark("a");
        playout.push_audio(&frame(3));
        playout.push_mark("b");
        playout
    }

    #[test]
    fn a_mark_is_released_after_the_audio_before_it() {
        let t0 = Instant::now();
        let mut playout = frames_and_marks();
        playout.push_mark("c");
        assert_eq!(playout.pending_marks(), 3);
        assert!(matches!(playout.poll(t0), Some(Output::Frame { .. })));
        assert_eq!(playout.poll(t0), None);
        assert!(matches!(playout.poll(t0 + F), Some(Output::Frame { .. })));
        assert_eq!(playout.poll(t0 + F), Some(Output::Mark("a")));
        assert_eq!(playout.poll(t0 + F), None);
        assert!(matches!(
            playout.poll(t0 + 2 * F),
            Some(Output::Frame { .. })
        ));
        assert_eq!(playout.poll(t0 + 2 * F), Some(Output::Mark("b")));
        assert_eq!(playout.poll(t0 + 2 * F), Some(Output::Mark("c")));
        assert_eq!(playout.poll(t0 + 2 * F), None);
        assert_eq!(playout.pending_marks(), 0);
    }

    #[test]
    fn a_mark_with_nothing_before_it_is_released_at_once() {
        let mut playout = Playout::new(AudioFormat::Slin16);
        playout.push_mark(7_u32);
        assert_eq!(playout.poll(Instant::now()), Some(Output::Mark(7)));
    }

    #[test]
    fn a_mark_completes_a_partial_frame_with_silence() {
        let t0 = Instant::now();
        let mut playout = Playout::new(AudioFormat::Ulaw);
        playout.push_audio(&[9; 100]);
        assert_eq!(playout.queued_frames(), 0);
        playout.push_mark("end");
        assert_eq!(playout.queued_frames(), 1);
        let Some(Output::Frame { audio, .. }) = playout.poll(t0) else {
            panic!("expected the padded frame");
        };
        assert_eq!(audio.len(), 160);
        assert_eq!(&audio[..100], &[9; 100][..]);
        assert!(audio[100..].iter().all(|&b| b == 0xFF));
        assert_eq!(playout.poll(t0), Some(Output::Mark("end")));
    }

    #[test]
    fn clear_drops_the_audio_and_returns_the_pending_marks() {
        let t0 = Instant::now();
        let mut playout = frames_and_marks();
        playout.push_audio(&[5; 10]);
        assert!(matches!(playout.poll(t0), Some(Output::Frame { .. })));
        assert_eq!(playout.clear(), ["a", "b"]);
        assert!(playout.is_empty());
        assert_eq!(playout.queued_frames(), 0);
        assert_eq!(playout.pending_marks(), 0);
        assert_eq!(playout.poll(t0 + F), None);
        // The partial frame went too, and the next audio starts a spurt at once.
        playout.push_audio(&frame(4));
        assert_eq!(playout.queued_frames(), 1);
        let at = t0 + Duration::from_millis(5);
        assert!(matches!(
            playout.poll(at),
            Some(Output::Frame { spurt_start: true, ref audio }) if audio[0] == 4
        ));
    }

    #[test]
    fn a_full_queue_drops_and_counts_the_excess() {
        let mut playout = Playout::<()>::new(AudioFormat::Ulaw).with_max_frames(4);
        playout.push_audio(&vec![0; 160 * 6 + 10]);
        assert_eq!(playout.queued_frames(), 4);
        assert_eq!(playout.dropped_frames(), 2);
        assert_eq!(playout.queued_duration(), 4 * F);
    }

    /// Random pushes, marks, clears and polls at random times: every frame is whole, no
    /// two frames come out less than 20 ms apart beyond the allowed burst, marks keep their
    /// order and each comes out exactly once (released or returned by a clear), and the
    /// audio that is not cleared comes out in order.
    #[test]
    fn random_schedules_keep_order_pace_and_marks() {
        let mut rng = fastrand::Rng::with_seed(0x9a_7e_d1);
        for _ in 0..200 {
            let format = AudioFormat::ALL[rng.usize(..AudioFormat::ALL.len())];
            let max_burst = rng.u32(1..5);
            let mut playout = Playout::new(format).with_max_burst(max_burst);
            let t0 = Instant::now();
            let mut now = t0;
            let mut next_mark = 0_u32;
            let mut marks_out = Vec::new();
            let mut sent_bytes = 0_usize;
            let mut frames_out = 0_usize;
            let mut releases: Vec<Instant> = Vec::new();
            let mut next_byte = 0_u8;
            for _ in 0..300 {
                match rng.u8(..10) {
                    0..=3 => {
                        let len = rng.usize(..format.frame_bytes() * 5);
                        let chunk: Vec<u8> = (0..len)
                            .map(|_| {
                                next_byte = next_byte.wrapping_add(1);
                                next_byte
                            })
                            .collect();
                        sent_bytes += len;
                        playout.push_audio(&chunk);
                    }
                    4 => {
                        playout.push_mark(next_mark);
                        next_mark += 1;
                    }
                    5 if rng.u8(..4) == 0 => marks_out.extend(playout.clear()),
                    _ => {
                        now += Duration::from_millis(rng.u64(..70));
                        while let Some(output) = playout.poll(now) {
                            match output {
                                Output::Frame { audio, .. } => {
                                    assert_eq!(audio.len(), format.frame_bytes());
                                    frames_out += 1;
                                    releases.push(now);
                                }
                                Output::Mark(mark) => marks_out.push(mark),
                            }
                        }
                    }
                }
            }
            marks_out.extend(playout.clear());
            assert_eq!(marks_out, (0..next_mark).collect::<Vec<_>>());
            assert!(frames_out * format.frame_bytes() <= sent_bytes + next_mark as usize * 640);
            // Within any window of `max_burst` releases at one instant, never more.
            let mut same = 1;
            for pair in releases.windows(2) {
                if pair[0] == pair[1] {
                    same += 1;
                    assert!(same <= max_burst as usize, "burst of {same} > {max_burst}");
                } else {
                    same = 1;
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn next_paces_on_tokios_clock() {
        let mut playout = Playout::new(AudioFormat::Ulaw);
        playout.push_audio(&[frame(1), frame(2), frame(3)].concat());
        playout.push_mark("done");
        let start = Instant::now();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let output = playout.next().await;
            seen.push((Instant::now() - start, output));
        }
        // Each frame at its slot or at most TIMER_SLACK ahead; the mark right after it.
        let near = |at: Duration, slot: Duration| at <= slot && at + TIMER_SLACK >= slot;
        assert_eq!(seen[0].0, Duration::ZERO);
        assert!(near(seen[1].0, F), "{:?}", seen[1].0);
        assert!(near(seen[2].0, 2 * F), "{:?}", seen[2].0);
        assert_eq!(seen[3], (seen[2].0, Output::Mark("done")));
        // Empty: next() waits for the end of the spurt, then forever.
        let waited = tokio::time::timeout(Duration::from_secs(5), playout.next()).await;
        assert!(waited.is_err());
        assert_eq!(playout.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn next_is_cancel_safe_in_a_select_loop() {
        let mut playout = Playout::<&str>::new(AudioFormat::Ulaw);
        let start = Instant::now();
        let mut released_at = Vec::new();
        let mut pushes = 0;
        let mut tick = tokio::time::interval_at(start, Duration::from_millis(40));
        while released_at.len() < 10 {
            tokio::select! {
                output = playout.next() => {
                    if let Output::Frame { .. } = output {
                        released_at.push(Instant::now() - start);
                    }
                }
                _ = tick.tick(), if pushes < 5 => {
                    pushes += 1;
                    playout.push_audio(&[frame(1), frame(2)].concat());
                }
            }
        }
        // On the 20 ms grid: each at its slot or at most TIMER_SLACK ahead.
        for (i, at) in released_at.iter().enumerate() {
            let slot = F * i as u32;
            assert!(*at <= slot && *at + TIMER_SLACK >= slot, "{released_at:?}");
        }
    }
}
