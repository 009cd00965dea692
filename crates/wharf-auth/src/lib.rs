//! Who may call wharf's API from another machine, decided without I/O.
//!
//! - [`token`]: an API token is `wharf_<id>_<secret>`. The id is public
//!   (it names the token in `wharf token list` and finds its row); the
//!   secret is 256 random bits, shown once when the token is made, and
//!   only its SHA-256 is stored. A presented token is checked by hashing
//!   its secret and comparing in constant time.
//! - [`scope`]: a token grants `read`, `deploy` or `admin` (each includes
//!   the ones before it), for every app or one. [`scope::required`] says
//!   which scope an endpoint needs and for which app, from its method and
//!   path alone, so the server checks every endpoint in one place.
//! - [`throttle`]: failed authentications are counted per peer address in a
//!   sliding window; past the limit the peer is answered 429 until the
//!   window moves on, before its token is even looked at.
//!
//! The local unix socket needs no token (its file mode is the
//! authentication); these rules apply to the `https://` listener.

pub mod scope;
pub mod throttle;
pub mod token;

pub use scope::{Grant, Requirement, Scope, required};
pub use throttle::Throttle;
pub use token::{NewToken, Presented, TokenError};
