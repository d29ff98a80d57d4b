//! The protobuf codec every gRPC service uses: prost's, with a small encode buffer.
//!
//! Why: tonic allocates each response body's encode buffer up front (8 KiB by default) and keeps
//! it for the life of the stream, so 10,000 idle `WatchChanges` streams would hold 80 MiB of
//! buffers for messages of a few hundred bytes. The buffer grows when a larger message (a long
//! list page) needs it, so unary responses lose nothing.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Initial size of a response's encode buffer.
pub const ENCODE_BUFFER: usize = 1024;
/// Encoded bytes gathered before a streaming response yields them (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// The settings [`LeanCodec`] encodes with.
pub fn encode_buffer_settings() -> BufferSettings {
    BufferSettings::new(ENCODE_BUFFER, YIELD_THRESHOLD)
}

/// `tonic_prost::ProstCodec` with a small initial encode buffer; decoding is unchanged.
#[derive(Debug, Clone, Copy)]
pub struct LeanCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(encode_buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}
