//! Request and response transformations compiled at config load: header operations with
//! templates ([`headers`]), JSON body operations by pointer ([`json`]), and the buffering of
//! one body while it is transformed ([`body`]).

pub mod body;
pub mod headers;
pub mod json;

pub use body::{BodyBuffer, BodyOutcome, BodyRefusal};
pub use json::Direction;

pub use headers::{HeaderOps, Template, TemplateContext};
pub use json::JsonTransform;
