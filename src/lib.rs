//! kvfree-rcu (work in progress).
pub use kvfree_rcu_gp as gp;
pub use kvfree_rcu_pool as pool;
