//! A mailbox made on first use. A channel allocates its first block of
//! slots when it is made; a torrent that never has a peer, a web seed or a
//! tracker keeps none of those (thousands of idle torrents in a session).

use tokio::sync::mpsc;

/// An mpsc channel of `capacity`, made when a sender is first asked for.
pub(super) struct Mailbox<T> {
    capacity: usize,
    tx: Option<mpsc::Sender<T>>,
    rx: Option<mpsc::Receiver<T>>,
}

impl<T> Mailbox<T> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tx: None,
            rx: None,
        }
    }

    /// A sender into the mailbox (made now if it is not yet).
    pub(super) fn sender(&mut self) -> mpsc::Sender<T> {
        if let Some(tx) = &self.tx {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(self.capacity);
        self.rx = Some(rx);
        self.tx.insert(tx).clone()
    }

    /// The next message; never ready while the mailbox is not made. The
    /// mailbox keeps a sender, so it never ends: `None` cannot happen.
    pub(super) async fn recv(&mut self) -> Option<T> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mailbox_is_made_by_its_first_sender_and_delivers() {
        let mut mailbox = Mailbox::new(2);
        assert!(mailbox.rx.is_none() && mailbox.tx.is_none());
        let tx = mailbox.sender();
        tx.send(7u8).await.unwrap();
        mailbox.sender().send(8).await.unwrap();
        assert_eq!(mailbox.recv().await, Some(7));
        assert_eq!(mailbox.recv().await, Some(8));
    }
}
