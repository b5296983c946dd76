//! Steering a running campaign: pause, resume, stop; and the status it publishes.

use tokio::sync::watch;

use crate::status::{CampaignStatus, RunState};

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Dial.
    Run,
    /// No new calls until resumed.
    Pause,
    /// No new calls; finish the ones in progress and end.
    Stop,
}

/// The handle a runner reads its orders from and publishes its status to.
#[derive(Debug)]
pub struct RunControl {
    requests: watch::Sender<Request>,
    status: watch::Sender<CampaignStatus>,
}

impl RunControl {
    /// A control for `campaign`, running, with nothing counted yet.
    pub fn new(campaign: &str) -> Self {
        RunControl {
            requests: watch::Sender::new(Request::Run),
            status: watch::Sender::new(CampaignStatus::empty(campaign, RunState::Idle)),
        }
    }

    /// Asks for `request`.
    pub fn request(&self, request: Request) {
        // A stop is final for this run.
        self.requests.send_if_modified(|current| {
            if *current == Request::Stop || *current == request {
                return false;
            }
            *current = request;
            true
        });
    }

    /// What is asked now.
    pub fn current(&self) -> Request {
        *self.requests.borrow()
    }

    /// Waits while paused; returns false once a stop was asked.
    pub async fn may_dial(&self) -> bool {
        let mut requests = self.requests.subscribe();
        loop {
            let now = *requests.borrow_and_update();
            match now {
                Request::Run => return true,
                Request::Stop => return false,
                Request::Pause => {
                    if requests.changed().await.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// Resolves when a stop is asked.
    pub async fn stopped(&self) {
        let mut requests = self.requests.subscribe();
        let _ = requests.wait_for(|r| *r == Request::Stop).await;
    }

    /// Publishes a status.
    pub fn publish(&self, status: CampaignStatus) {
        self.status.send_replace(status);
    }

    /// The last status published.
    pub fn status(&self) -> CampaignStatus {
        self.status.borrow().clone()
    }

    /// Status updates, for the progress display.
    pub fn watch_status(&self) -> watch::Receiver<CampaignStatus> {
        self.status.subscribe()
    }
}
