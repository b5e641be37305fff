//! tcp-echo: every byte back, verbatim.

use super::Violation;
use crate::output::Output;

/// The tcp-echo state: there is none, each read is answered whole.
#[derive(Debug)]
pub struct Echo;

impl Echo {
    /// Queues `input` unchanged; never fails.
    pub fn on_data(&mut self, input: &[u8], out: &mut Output) -> Result<(), Violation> {
        out.push_bytes(input);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `input` to a fresh Echo in reads cut at `cuts`.
    fn echo_in_reads(input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut echo = Echo;
        let mut out = Output::default();
        let mut start = 0;
        for &cut in cuts.iter().chain([&input.len()]) {
            echo.on_data(&input[start..cut], &mut out).unwrap();
            start = cut;
        }
        out.to_vec()
    }

    #[test]
    fn echoes_every_byte() {
        let input = b"hello\0\xff\r\n";
        assert_eq!(echo_in_reads(input, &[]), input);
        assert_eq!(echo_in_reads(b"", &[]), b"");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_split_echoes_the_whole(
            input in proptest::collection::vec(any::<u8>(), 0..200),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(echo_in_reads(&input, &cuts), input);
        }
    }
}
