//! Re-framing: audio arrives in chunks of any length (a bot sends 40 ms, a whole sentence,
//! or 7 bytes); Asterisk must get whole 20 ms frames. A [`Reframer`] keeps the bytes that
//! do not yet make a frame for the next chunk.

use bytes::{Bytes, BytesMut};

use super::AudioFormat;

/// Frames whole 20 ms frames of one [`AudioFormat`] out of chunks of any length.
///
/// Frames are handed out as [`Bytes`] split off one growing buffer, so taking a frame
/// neither allocates nor copies; the buffer is reused once the frames handed out are
/// dropped.
#[derive(Debug)]
pub struct Reframer {
    format: AudioFormat,
    frame_bytes: usize,
    buf: BytesMut,
}

impl Reframer {
    /// A re-framer for `format`, empty.
    pub fn new(format: AudioFormat) -> Self {
        let frame_bytes = format.frame_bytes();
        Self {
            format,
            frame_bytes,
            buf: BytesMut::with_capacity(frame_bytes * 8),
        }
    }

    /// The format it frames.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Appends a chunk; its bytes come out as frames once there are enough of them.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole frame, if the bytes pushed so far make one.
    pub fn next_frame(&mut self) -> Option<Bytes> {
        if self.buf.len() >= self.frame_bytes {
            Some(self.buf.split_to(self.frame_bytes).freeze())
        } else {
            None
        }
    }

    /// How many whole frames [`next_frame`](Self::next_frame) would hand out now.
    pub fn ready_frames(&self) -> usize {
        self.buf.len() / self.frame_bytes
    }

    /// Bytes held that do not make a whole frame yet.
    pub fn remainder(&self) -> usize {
        self.buf.len() % self.frame_bytes
    }

    /// Completes a partial last frame with silence, so that every byte pushed so far
    /// comes out in whole frames (for the end of an utterance, before a mark). Returns
    /// how many bytes of silence were added (0 when there was no partial frame).
    pub fn pad_to_frame(&mut self) -> usize {
        let missing = match self.remainder() {
            0 => 0,
            partial => self.frame_bytes - partial,
        };
        self.buf
            .resize(self.buf.len() + missing, self.format.silence_byte());
        missing
    }

    /// Drops everything held, whole frames and remainder.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_keeps_the_remainder() {
        let mut reframer = Reframer::new(AudioFormat::Ulaw);
        reframer.push(&[1; 100]);
        assert_eq!(reframer.next_frame(), None);
        assert_eq!(reframer.remainder(), 100);
        reframer.push(&[2; 300]);
        assert_eq!(reframer.ready_frames(), 2);
        let first = reframer.next_frame().unwrap();
        assert_eq!(first.len(), 160);
        assert_eq!(&first[..100], &[1; 100][..]);
        assert_eq!(&first[100..], &[2; 60][..]);
        assert_eq!(reframer.next_frame().unwrap(), Bytes::from(vec![2; 160]));
        assert_eq!(reframer.next_frame(), None);
        assert_eq!(reframer.remainder(), 80);
    }

    #[test]
    fn pads_a_partial_frame_with_the_formats_silence() {
        for format in AudioFormat::ALL {
            let mut reframer = Reframer::new(format);
            assert_eq!(reframer.pad_to_frame(), 0);
            reframer.push(&[7; 10]);
            assert_eq!(reframer.pad_to_frame(), format.frame_bytes() - 10);
            let frame = reframer.next_frame().unwrap();
            assert_eq!(frame.len(), format.frame_bytes());
            assert!(frame[10..].iter().all(|&b| b == format.silence_byte()));
            assert_eq!(reframer.remainder(), 0);
            assert_eq!(reframer.pad_to_frame(), 0);
        }
    }

    #[test]
    fn clear_drops_everything() {
        let mut reframer = Reframer::new(AudioFormat::Slin16);
        reframer.push(&[1; 1000]);
        reframer.clear();
        assert_eq!(reframer.ready_frames(), 0);
        assert_eq!(reframer.remainder(), 0);
        assert_eq!(reframer.next_frame(), None);
    }

    /// Random streams cut at random places: the frames are whole and, with the
    /// remainder, are exactly the stream.
    #[test]
    fn random_chunks_come_out_as_the_same_stream_in_whole_frames() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_f4a3);
        for _ in 0..300 {
            let format = AudioFormat::ALL[rng.usize(..AudioFormat::ALL.len())];
            let total = rng.usize(..8000);
            let stream: Vec<u8> = (0..total).map(|_| rng.u8(..)).collect();
            let mut reframer = Reframer::new(format);
            let mut out = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let cut = rng.usize(..=rest.len().min(2000));
                reframer.push(&rest[..cut]);
                rest = &rest[cut..];
                if rng.bool() {
                    while let Some(frame) = reframer.next_frame() {
                        assert_eq!(frame.len(), format.frame_bytes());
                        out.extend_from_slice(&frame);
                    }
                }
            }
            while let Some(frame) = reframer.next_frame() {
                assert_eq!(frame.len(), format.frame_bytes());
                out.extend_from_slice(&frame);
            }
            assert_eq!(out.len() + reframer.remainder(), total);
            assert_eq!(out[..], stream[..out.len()]);
            assert_eq!(reframer.remainder(), total % format.frame_bytes());
        }
    }
}
