//! Cross-crate tests of the whole system live in `tests/tests/`: the static checks of the
//! deployment files and the end-to-end suites. This library is empty on purpose.
