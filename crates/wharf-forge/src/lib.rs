//! wharf's knowledge of git forges for push to deploy, as pure functions.
//!
//! A forge (GitHub, GitLab, Gitea, Forgejo, Bitbucket Cloud) tells wharf
//! about a push with a webhook, and wharf tells the forge how a commit's
//! pipeline went with a commit status. This crate holds everything about
//! those two conversations that does not need a socket, a clock or a disk,
//! so each rule is a table-driven test:
//!
//! - [`forge`]: the [`Forge`] words and [`detect`], which forge sent a
//!   request, from its headers;
//! - [`verify`](mod@verify): the webhook's signature (or GitLab's token) checked over
//!   the raw body in constant time, failing closed ([`verify()`]);
//! - [`event`]: what the delivery is ([`classify`]) and the key to
//!   de-duplicate it on ([`delivery_key`]);
//! - [`push`]: the push payload of each forge, read into one [`Push`]
//!   shape ([`parse_push`]);
//! - [`status`]: a commit status as a request to send
//!   ([`status_request`]), the API base to send it to
//!   ([`default_api_base`]) and the retry schedule ([`backoff`]).
//!
//! The server reads the clock and passes `now` in; it sends the
//! [`StatusRequest`]s and stores the [`DeliveryKey`]s. Nothing here
//! panics on any input a forge, or someone pretending to be one, can send.

pub mod event;
pub mod forge;
pub mod push;
pub mod status;
pub mod verify;

pub use event::{DeliveryKey, Event, KeySource, classify, delivery_key};
pub use forge::{Forge, UnknownForge, detect};
pub use push::{Push, PushError, parse_push};
pub use status::{
    STATUS_ATTEMPTS, Status, StatusError, StatusRequest, StatusState, backoff, default_api_base,
    remote_repo, retryable, state_word, status_request,
};
pub use verify::{DEFAULT_TOLERANCE, Scheme, VerifyError, VerifyOptions, verify};
