//! The reference's learning-rate schedule: early stopping on validation
//! accuracy, which first drops the learning rate by 10 and finally stops.
//!
//! This follows CNNDetection's `train.py` and its `EarlyStopping` helper to
//! the letter: an epoch counts as an improvement when its accuracy is at
//! least `best + delta` (delta 0.001, then 0.002 after every drop); after
//! `patience` epochs without one the learning rate is divided by 10 and the
//! counter starts afresh (with no best score); training stops when the
//! divided rate would fall below `min_lr`.

/// What the schedule decides after an epoch's validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// A new best accuracy: save the `best` checkpoint and go on.
    Improved,
    /// No improvement yet; `epochs_without` of `patience` used.
    Wait {
        /// Epochs since the last improvement.
        epochs_without: usize,
    },
    /// Patience ran out: the learning rate was divided by 10.
    LrDropped {
        /// The new learning rate.
        lr: f64,
    },
    /// Patience ran out and the rate would fall below the minimum: stop.
    Stop,
}

/// Early stopping and learning-rate drops, as the reference trainer does them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    /// Current learning rate.
    pub lr: f64,
    /// Epochs without improvement tolerated before a drop.
    pub patience: usize,
    /// Required improvement of the current stage.
    pub delta: f64,
    /// Best accuracy of the current stage (none right after a drop).
    pub best: Option<f64>,
    /// Epochs without improvement in the current stage.
    pub counter: usize,
    /// Below this learning rate, training stops.
    pub min_lr: f64,
}

/// The reference's delta before any drop.
pub const FIRST_DELTA: f64 = 0.001;
/// The reference's delta after a drop.
pub const LATER_DELTA: f64 = 0.002;

impl Schedule {
    /// The reference's defaults: patience 5, delta 0.001, stop below 1e-6.
    pub fn new(lr: f64, patience: usize) -> Schedule {
        Schedule {
            lr,
            patience,
            delta: FIRST_DELTA,
            best: None,
            counter: 0,
            min_lr: 1e-6,
        }
    }

    /// Feeds one epoch's validation accuracy.
    pub fn observe(&mut self, accuracy: f64) -> Decision {
        match self.best {
            // `score < best_score - delta` with the reference's negative delta.
            Some(best) if accuracy < best + self.delta => {
                self.counter += 1;
                if self.counter < self.patience {
                    return Decision::Wait {
                        epochs_without: self.counter,
                    };
                }
                let lr = self.lr / 10.0;
                if lr < self.min_lr {
                    return Decision::Stop;
                }
                self.lr = lr;
                self.delta = LATER_DELTA;
                self.best = None;
                self.counter = 0;
                Decision::LrDropped { lr }
            }
            _ => {
                self.best = Some(accuracy);
                self.counter = 0;
                Decision::Improved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn improvements_must_clear_the_delta() {
        let mut s = Schedule::new(1e-4, 2);
        assert_eq!(s.observe(0.80), Decision::Improved);
        // +0.0005 is not enough with delta 0.001.
        assert_eq!(s.observe(0.8005), Decision::Wait { epochs_without: 1 });
        assert_eq!(s.observe(0.8015), Decision::Improved);
        assert_eq!(s.best, Some(0.8015));
    }

    #[test]
    fn patience_drops_the_rate_then_stops_below_1e6() {
        let mut s = Schedule::new(1e-4, 2);
        s.observe(0.9);
        assert_eq!(s.observe(0.9), Decision::Wait { epochs_without: 1 });
        assert_eq!(s.observe(0.9), Decision::LrDropped { lr: 1e-4 / 10.0 });
        assert_eq!(s.delta, LATER_DELTA);
        // After a drop the stage starts afresh: the next epoch is a new best
        // whatever its accuracy, and improvements now need 0.002.
        assert_eq!(s.observe(0.5), Decision::Improved);
        assert_eq!(s.observe(0.5015), Decision::Wait { epochs_without: 1 });
        assert_eq!(
            s.observe(0.4),
            Decision::LrDropped {
                lr: 1e-4 / 10.0 / 10.0
            }
        );
        // 1e-4 / 10 / 10 is not below 1e-6 in f64, as in Python; one more is.
        s.observe(0.5);
        s.observe(0.5);
        assert_eq!(s.observe(0.5), Decision::Stop);
        assert!(s.lr >= 1e-6);
    }
}
