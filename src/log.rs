//! Logging shim: forwards to the `log` crate with the `log` feature, compiles to nothing
//! without it (the arguments are still type-checked).

macro_rules! event {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "log")]
        ::log::$level!(target: "nestforge_edge", $($arg)+);
        #[cfg(not(feature = "log"))]
        {
            if false {
                let _ = ::std::format!($($arg)+);
            }
        }
    }};
}

pub(crate) use event;
