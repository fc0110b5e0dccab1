//! [`Service`]: the iceoryx2 service variant every channel uses — iceoryx2's inter-process
//! variant with each piece that would live in POSIX shared memory (`/dev/shm`) kept in a
//! file under the channel's root directory instead.
//!
//! So one directory holds everything a channel is made of: its bookkeeping, its data
//! segments, its connections and its event sockets. A container then needs that one
//! directory mounted — not the host's `/dev/shm` or IPC namespace — to share a channel
//! with the runtime. The root should be on a tmpfs (the default,
//! [`DEFAULT_ROOT`](crate::DEFAULT_ROOT), is under `/dev/shm`): data segments are files
//! mapped by both sides, and on a tmpfs they never touch a disk.

use core::fmt::Debug;
use iceoryx2::service::internal::ServiceInternal;
use iceoryx2_bb_elementary_traits::testing::abandonable::Abandonable;
use iceoryx2_bb_elementary_traits::zero_copy_send::ZeroCopySend;
use iceoryx2_bb_lock_free::mpmc::counting_bit_set::RelocatableCountingBitSet;
use iceoryx2_cal::event::trigger::unix_datagram_socket::GenericUnixDatagramSocketTrigger;
use iceoryx2_cal::event::trigger::State;
use iceoryx2_cal::shm_allocator::bump_allocator::BumpAllocator;
use iceoryx2_cal::shm_allocator::pool_allocator::PoolAllocator;
use iceoryx2_cal::{
    arc_sync_policy, bag, dynamic_storage, hash, monitoring, reactor, resizable_shared_memory,
    serialize, shared_memory, static_storage, zero_copy_connection,
};

/// The iceoryx2 service variant of every channel: ports that may move between threads,
/// all state in files under the root directory.
#[derive(Debug, Clone)]
pub struct Service {}

type FileMemory<Allocator> = shared_memory::file::Memory<Allocator>;

impl iceoryx2::service::Service for Service {
    type StaticStorage = static_storage::file::Storage;
    type ConfigSerializer = serialize::recommended::Recommended;
    type PersistentDynamicStorage<T: Debug + Send + Sync + ZeroCopySend + 'static> =
        dynamic_storage::file::Storage<T>;
    type Bag = bag::recommended::Recommended;
    type DynamicStorage<T: Debug + Send + Sync + ZeroCopySend + 'static> =
        dynamic_storage::file::Storage<T>;
    type ServiceNameHasher = hash::recommended::Recommended;
    type SharedMemory = FileMemory<PoolAllocator>;
    type ResizableSharedMemory =
        resizable_shared_memory::dynamic::DynamicMemory<PoolAllocator, FileMemory<PoolAllocator>>;
    type Connection = zero_copy_connection::file::Connection;
    type Event = GenericUnixDatagramSocketTrigger<
        RelocatableCountingBitSet,
        dynamic_storage::file::Storage<State<RelocatableCountingBitSet, ()>>,
    >;
    type Monitoring = monitoring::recommended::Ipc;
    type Reactor = reactor::recommended::Ipc;
    type ArcThreadSafetyPolicy<T: Send + Debug + Abandonable> =
        arc_sync_policy::mutex_protected::MutexProtected<T>;
    type BlackboardMgmt<KeyType: Send + Sync + Debug + ZeroCopySend + 'static> =
        dynamic_storage::file::Storage<KeyType>;
    type BlackboardPayload = FileMemory<BumpAllocator>;
    type UniqueId = iceoryx2::unique_id_generator::unique_system_id::UniqueSystemId;
}

impl ServiceInternal<Service> for Service {}
