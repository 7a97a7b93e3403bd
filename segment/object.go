package segment

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// A sealed segment object, as uploaded to the bucket:
//
//	[frame 0][frame 1]...[frame n-1][footer][footer length u32][magic "STRATA01"]
//
// Each frame holds whole record batches, about ObjectOptions.FrameSize bytes
// of them, as one independent zstd frame, or raw when zstd does not shrink
// them. The footer indexes the frames so a reader can range-GET only the
// frames covering the offsets it wants. The same input and options always
// give the same bytes, so a retried upload is idempotent.

// ObjectMagic ends every sealed object.
const ObjectMagic = "STRATA01"

// TrailerSize is the size of the footer length and the magic.
const TrailerSize = 4 + len(ObjectMagic)

// ObjectFormatVersion is the footer format this package writes and reads.
const ObjectFormatVersion = 1

// MaxFooterSize bounds the footer a reader accepts.
const MaxFooterSize = 16 << 20

// Frame codecs.
const (
	FrameRaw  = 0
	FrameZstd = 1
)

// ObjectMeta is what an object records about where its batches come from.
type ObjectMeta struct {
	Topic       string
	Partition   int32
	LeaderEpoch int32
}

// ObjectOptions tune the encoder. Zero values take the defaults.
type ObjectOptions struct {
	// FrameSize is the uncompressed size a frame aims for (default 1 MiB);
	// a batch larger than it is a frame of its own.
	FrameSize int
}

// Frame is the footer's entry for one frame.
type Frame struct {
	FirstOffset  int64
	LastOffset   int64
	MaxTimestamp int64
	Position     int64  // byte position of the frame in the object
	StoredLen    int64  // bytes in the object
	RawLen       int64  // bytes of batches once decoded
	CRC          uint32 // CRC-32C of the stored bytes
	Codec        uint8  // FrameRaw or FrameZstd
}

// Footer describes a sealed object.
type Footer struct {
	Version      uint16
	Meta         ObjectMeta
	BaseOffset   int64
	LastOffset   int64
	MaxTimestamp int64
	Records      int64 // records in all batches
	Frames       []Frame
}

// FramesEnd is the byte position where the frames end and the footer
// starts.
func (f *Footer) FramesEnd() int64 {
	if len(f.Frames) == 0 {
		return 0
	}
	l := f.Frames[len(f.Frames)-1]
	return l.Position + l.StoredLen
}

// RawSize is the total size of the batches in the object.
func (f *Footer) RawSize() int64 {
	var n int64
	for _, fr := range f.Frames {
		n += fr.RawLen
	}
	return n
}

var (
	encoderOnce sync.Once
	encoder     *zstd.Encoder
	decoderOnce sync.Once
	decoder     *zstd.Decoder
)

// zstdEncoder is shared: EncodeAll is safe for concurrent use, and one
// encoder with fixed options gives deterministic output.
func zstdEncoder() *zstd.Encoder {
	encoderOnce.Do(func() {
		var err error
		encoder, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false),
			zstd.WithZeroFrames(true),
			zstd.WithLowerEncoderMem(false),
		)
		if err != nil {
			panic(err) // only on invalid options
		}
	})
	return encoder
}

func zstdDecoder() *zstd.Decoder {
	decoderOnce.Do(func() {
		var err error
		decoder, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(256<<20),
			zstd.IgnoreChecksum(true),
		)
		if err != nil {
			panic(err)
		}
	})
	return decoder
}

// EncodeObject encodes batches, concatenated CRC-valid RecordBatch v2 with
// contiguous offsets, as a sealed object appended to dst. It returns the
// object and its footer. Invalid batches return an error wrapping
// ErrCorrupt and nothing is encoded.
func EncodeObject(dst []byte, meta ObjectMeta, batches []byte, opts ObjectOptions) ([]byte, *Footer, error) {
	if opts.FrameSize <= 0 {
		opts.FrameSize = 1 << 20
	}
	if len(batches) == 0 {
		return nil, nil, fmt.Errorf("%w: sealed object with no batches", ErrCorrupt)
	}
	f := &Footer{Version: ObjectFormatVersion, Meta: meta, MaxTimestamp: math.MinInt64}
	start := len(dst)
	var cur *Frame
	var frameStart int
	next := int64(-1)
	flush := func(end int) {
		raw := batches[frameStart:end]
		cur.Position = int64(len(dst) - start)
		cur.RawLen = int64(len(raw))
		enc := zstdEncoder().EncodeAll(raw, dst)
		if stored := len(enc) - len(dst); stored < len(raw) {
			cur.Codec, cur.StoredLen = FrameZstd, int64(stored)
			dst = enc
		} else {
			cur.Codec, cur.StoredLen = FrameRaw, int64(len(raw))
			dst = append(dst, raw...) // overwrites the unused zstd output
		}
		cur.CRC = CRC32C(dst[len(dst)-int(cur.StoredLen):])
		f.Frames = append(f.Frames, *cur)
		cur = nil
	}
	pos := 0
	for pos < len(batches) {
		h, err := ValidateBatch(batches[pos:])
		if err != nil {
			return nil, nil, fmt.Errorf("encode object: batch at byte %d: %w", pos, asCorrupt(err))
		}
		if next >= 0 && h.BaseOffset != next {
			return nil, nil, fmt.Errorf("%w: encode object: batch at byte %d has base offset %d, want %d", ErrCorrupt, pos, h.BaseOffset, next)
		}
		if cur != nil && pos-frameStart+h.Size() > opts.FrameSize {
			flush(pos)
		}
		if cur == nil {
			cur = &Frame{FirstOffset: h.BaseOffset, MaxTimestamp: math.MinInt64}
			frameStart = pos
		}
		cur.LastOffset = h.LastOffset()
		cur.MaxTimestamp = max(cur.MaxTimestamp, h.MaxTimestamp)
		f.MaxTimestamp = max(f.MaxTimestamp, h.MaxTimestamp)
		f.Records += int64(h.NumRecords)
		next = h.NextOffset()
		pos += h.Size()
	}
	flush(pos)
	f.BaseOffset = f.Frames[0].FirstOffset
	f.LastOffset = f.Frames[len(f.Frames)-1].LastOffset
	footer := f.appendTo(nil)
	dst = append(dst, footer...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(footer)))
	dst = append(dst, ObjectMagic...)
	return dst, f, nil
}

// Footer encoding (big endian):
//
//	version u16, topic (u16 length + bytes), partition i32, leader epoch i32,
//	base offset i64, last offset i64, max timestamp i64, records i64,
//	frame count u32, frames (first i64, last i64, max ts i64, position i64,
//	stored len i64, raw len i64, crc u32, codec u8), footer crc u32
const (
	footerFixed   = 2 + 2 + 4 + 4 + 8*4 + 4 + 4
	frameEntryLen = 8*6 + 4 + 1
)

func (f *Footer) appendTo(b []byte) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, f.Version)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.Meta.Topic)))
	b = append(b, f.Meta.Topic...)
	b = binary.BigEndian.AppendUint32(b, uint32(f.Meta.Partition))
	b = binary.BigEndian.AppendUint32(b, uint32(f.Meta.LeaderEpoch))
	for _, v := range []int64{f.BaseOffset, f.LastOffset, f.MaxTimestamp, f.Records} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Frames)))
	for _, fr := range f.Frames {
		for _, v := range []int64{fr.FirstOffset, fr.LastOffset, fr.MaxTimestamp, fr.Position, fr.StoredLen, fr.RawLen} {
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		}
		b = binary.BigEndian.AppendUint32(b, fr.CRC)
		b = append(b, fr.Codec)
	}
	return binary.BigEndian.AppendUint32(b, CRC32C(b[start:]))
}

// ParseTrailer reads the last TrailerSize bytes of an object and returns the
// length of the footer before them.
func ParseTrailer(tail []byte) (int, error) {
	if len(tail) < TrailerSize {
		return 0, fmt.Errorf("%w: object trailer of %d bytes", ErrCorrupt, len(tail))
	}
	tail = tail[len(tail)-TrailerSize:]
	if string(tail[4:]) != ObjectMagic {
		return 0, fmt.Errorf("%w: object magic %q, want %q", ErrCorrupt, tail[4:], ObjectMagic)
	}
	n := binary.BigEndian.Uint32(tail)
	if n < footerFixed || n > MaxFooterSize {
		return 0, fmt.Errorf("%w: footer length %d", ErrCorrupt, n)
	}
	return int(n), nil
}

// DecodeFooter decodes exactly the footer bytes of an object and checks
// them: the footer CRC, the version, and that the frames are contiguous
// from position 0 with increasing offsets inside the object's range.
// Failures wrap ErrCorrupt.
func DecodeFooter(b []byte) (*Footer, error) {
	if len(b) < footerFixed {
		return nil, fmt.Errorf("%w: footer of %d bytes", ErrCorrupt, len(b))
	}
	body := b[:len(b)-4]
	if got, want := CRC32C(body), binary.BigEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, fmt.Errorf("%w: footer crc %08x, want %08x", ErrCorrupt, got, want)
	}
	f := &Footer{Version: binary.BigEndian.Uint16(body)}
	if f.Version != ObjectFormatVersion {
		return nil, fmt.Errorf("%w: object format version %d, want %d", ErrCorrupt, f.Version, ObjectFormatVersion)
	}
	tl := int(binary.BigEndian.Uint16(body[2:]))
	if len(body) < footerFixed-4+tl {
		return nil, fmt.Errorf("%w: footer too short for topic of %d bytes", ErrCorrupt, tl)
	}
	p := 4
	f.Meta.Topic = string(body[p : p+tl])
	p += tl
	f.Meta.Partition = int32(binary.BigEndian.Uint32(body[p:]))
	f.Meta.LeaderEpoch = int32(binary.BigEndian.Uint32(body[p+4:]))
	p += 8
	i64 := func() int64 { v := int64(binary.BigEndian.Uint64(body[p:])); p += 8; return v }
	f.BaseOffset, f.LastOffset, f.MaxTimestamp, f.Records = i64(), i64(), i64(), i64()
	n := int(binary.BigEndian.Uint32(body[p:]))
	p += 4
	if n == 0 || n > (len(body)-p)/frameEntryLen || len(body)-p != n*frameEntryLen {
		return nil, fmt.Errorf("%w: footer claims %d frames in %d bytes", ErrCorrupt, n, len(body)-p)
	}
	f.Frames = make([]Frame, n)
	var pos int64
	next := f.BaseOffset
	for i := range f.Frames {
		fr := &f.Frames[i]
		fr.FirstOffset, fr.LastOffset, fr.MaxTimestamp, fr.Position, fr.StoredLen, fr.RawLen = i64(), i64(), i64(), i64(), i64(), i64()
		fr.CRC = binary.BigEndian.Uint32(body[p:])
		fr.Codec = body[p+4]
		p += 5
		switch {
		case fr.Position != pos:
			return nil, fmt.Errorf("%w: frame %d at position %d, want %d", ErrCorrupt, i, fr.Position, pos)
		case fr.StoredLen <= 0 || fr.StoredLen > MaxBatchSize*4 || fr.RawLen < BatchHeaderSize || fr.RawLen > MaxBatchSize*4:
			return nil, fmt.Errorf("%w: frame %d lengths %d/%d", ErrCorrupt, i, fr.StoredLen, fr.RawLen)
		case fr.Codec == FrameRaw && fr.StoredLen != fr.RawLen, fr.Codec > FrameZstd:
			return nil, fmt.Errorf("%w: frame %d codec %d with lengths %d/%d", ErrCorrupt, i, fr.Codec, fr.StoredLen, fr.RawLen)
		case fr.FirstOffset != next || fr.LastOffset < fr.FirstOffset:
			return nil, fmt.Errorf("%w: frame %d offsets [%d, %d], want first %d", ErrCorrupt, i, fr.FirstOffset, fr.LastOffset, next)
		case fr.MaxTimestamp > f.MaxTimestamp:
			return nil, fmt.Errorf("%w: frame %d max timestamp %d above the object's %d", ErrCorrupt, i, fr.MaxTimestamp, f.MaxTimestamp)
		}
		pos += fr.StoredLen
		next = fr.LastOffset + 1
	}
	if next-1 != f.LastOffset || f.Records <= 0 || f.Records > f.LastOffset-f.BaseOffset+1 {
		return nil, fmt.Errorf("%w: footer range [%d, %d] with %d records, frames end at %d", ErrCorrupt, f.BaseOffset, f.LastOffset, f.Records, next-1)
	}
	return f, nil
}

// DecodeObjectFooter decodes the footer of a whole object held in memory
// and checks that the frames end where the footer starts.
func DecodeObjectFooter(obj []byte) (*Footer, error) {
	n, err := ParseTrailer(obj)
	if err != nil {
		return nil, err
	}
	if n > len(obj)-TrailerSize {
		return nil, fmt.Errorf("%w: footer length %d in an object of %d bytes", ErrCorrupt, n, len(obj))
	}
	footerStart := len(obj) - TrailerSize - n
	f, err := DecodeFooter(obj[footerStart : len(obj)-TrailerSize])
	if err != nil {
		return nil, err
	}
	if f.FramesEnd() != int64(footerStart) {
		return nil, fmt.Errorf("%w: frames end at %d, footer starts at %d", ErrCorrupt, f.FramesEnd(), footerStart)
	}
	return f, nil
}

// FramesFor returns the index range [first, last] of the frames holding
// offsets from through to (inclusive), and ok false when none does.
func (f *Footer) FramesFor(from, to int64) (first, last int, ok bool) {
	first, last = -1, -1
	for i, fr := range f.Frames {
		if fr.LastOffset < from || fr.FirstOffset > to {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	return first, last, first >= 0
}

// ByteRange is the [start, end) byte range of frames first..last, for a
// ranged GET.
func (f *Footer) ByteRange(first, last int) (start, end int64) {
	return f.Frames[first].Position, f.Frames[last].Position + f.Frames[last].StoredLen
}

// DecodeFrame decodes frame i from its stored bytes: it checks the stored
// CRC, decompresses, checks the length, and validates every batch (CRC and
// offsets inside the frame's range, contiguous). It returns the batches, or
// an error wrapping ErrCorrupt; it never returns bytes that fail a check.
func DecodeFrame(f *Footer, i int, stored []byte) ([]byte, error) {
	return AppendFrame(nil, f, i, stored)
}

// AppendFrame is DecodeFrame appending the batches to dst. On error dst is
// returned unextended.
func AppendFrame(dst []byte, f *Footer, i int, stored []byte) ([]byte, error) {
	if i < 0 || i >= len(f.Frames) {
		return dst, fmt.Errorf("segment: frame %d of %d", i, len(f.Frames))
	}
	fr := f.Frames[i]
	if int64(len(stored)) != fr.StoredLen {
		return dst, fmt.Errorf("%w: frame %d is %d bytes, want %d", ErrCorrupt, i, len(stored), fr.StoredLen)
	}
	if got := CRC32C(stored); got != fr.CRC {
		return dst, fmt.Errorf("%w: frame %d crc %08x, want %08x", ErrCorrupt, i, got, fr.CRC)
	}
	start := len(dst)
	out := dst
	if fr.Codec == FrameZstd {
		if cap(out)-len(out) < int(min(fr.RawLen, 8<<20)) {
			out = append(make([]byte, 0, len(out)+int(min(fr.RawLen, 8<<20))), out...)
		}
		var err error
		out, err = zstdDecoder().DecodeAll(stored, out)
		if err != nil {
			return dst, fmt.Errorf("%w: frame %d: zstd: %v", ErrCorrupt, i, err)
		}
	} else {
		out = append(out, stored...)
	}
	raw := out[start:]
	if int64(len(raw)) != fr.RawLen {
		return dst, fmt.Errorf("%w: frame %d decodes to %d bytes, want %d", ErrCorrupt, i, len(raw), fr.RawLen)
	}
	next := fr.FirstOffset
	err := ForEachBatch(raw, func(h BatchHeader, _ []byte) error {
		if h.BaseOffset != next || h.LastOffset() > fr.LastOffset {
			return fmt.Errorf("%w: frame %d: batch [%d, %d], want base %d up to %d", ErrCorrupt, i, h.BaseOffset, h.LastOffset(), next, fr.LastOffset)
		}
		next = h.NextOffset()
		return nil
	})
	if err != nil {
		return dst, asCorrupt(err)
	}
	if next != fr.LastOffset+1 {
		return dst, fmt.Errorf("%w: frame %d batches end at %d, want %d", ErrCorrupt, i, next-1, fr.LastOffset)
	}
	return out, nil
}

// DecodeObject decodes a whole object held in memory back to its batches.
func DecodeObject(obj []byte) (*Footer, []byte, error) {
	f, err := DecodeObjectFooter(obj)
	if err != nil {
		return nil, nil, err
	}
	out := make([]byte, 0, min(f.RawSize(), int64(len(obj))*64))
	for i, fr := range f.Frames {
		if out, err = AppendFrame(out, f, i, obj[fr.Position:fr.Position+fr.StoredLen]); err != nil {
			return nil, nil, err
		}
	}
	return f, out, nil
}
