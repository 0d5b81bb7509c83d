//! Macros shared by the configuration types (textual scope: declared first in `lib.rs`).

/// By-value setters, one per field: `name: Type;` gives `pub fn name(self, name: Type)`.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $name: $ty) -> Self {
            self.$name = $name;
            self
        }
    )*};
}
