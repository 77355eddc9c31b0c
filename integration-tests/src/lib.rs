//! Black-box tests of the towerpost binary live in tests/.
