//! Request and response transformations compiled at config load: header operations with
//! templates ([`headers`]), and JSON body operations by pointer ([`json`]).

pub mod headers;
pub mod json;

pub use headers::{HeaderOps, Template, TemplateContext};
pub use json::JsonTransform;
