package history

import "context"

// Covers states the recovery rule: a client at pos misses nothing it
// cannot be given when its epoch is the channel's, it is not ahead of
// the top, and either it is at the top or the publication right after it
// is still kept. oldest is the offset of the oldest publication kept, or
// top.Offset+1 when none is.
func Covers(pos, top Position, oldest uint64) bool {
	return pos.Epoch == top.Epoch &&
		pos.Offset <= top.Offset &&
		(pos.Offset == top.Offset || oldest <= pos.Offset+1)
}

// Recover returns what a client at pos missed in channel: the publications
// after pos, oldest first, and recovered true when they are all of them
// (see [Covers]). recovered is false, and pubs nil, when the epoch
// differs, pos is ahead of the top, the publication after pos is no
// longer kept, or more than limit are missing (limit 0 or less: no bound):
// the client must start afresh then. top is the channel's position that
// the publications lead to, returned whenever err is nil.
//
// It costs one Read, which returns at most limit publications, even when
// the epoch turns out to differ.
func Recover(ctx context.Context, s Store, channel string, pos Position, limit int) (pubs []Publication, top Position, recovered bool, err error) {
	pubs, top, err = s.Read(ctx, channel, Query{Since: pos.Offset, Limit: max(limit, 0)})
	if err != nil {
		return nil, Position{}, false, err
	}
	if pos.Epoch != top.Epoch || pos.Offset > top.Offset {
		return nil, top, false, nil
	}
	missing := top.Offset - pos.Offset
	if limit > 0 && missing > uint64(limit) {
		return nil, top, false, nil
	}
	oldest := top.Offset + 1
	if len(pubs) > 0 {
		oldest = pubs[0].Offset
	}
	if !Covers(pos, top, oldest) || !contiguous(pubs, pos.Offset, missing) {
		return nil, top, false, nil
	}
	return pubs, top, true, nil
}

// contiguous reports whether pubs are exactly the offsets after..after+n:
// a store that returned fewer, or with a gap, must not make a client
// believe it has everything.
func contiguous(pubs []Publication, after, n uint64) bool {
	if uint64(len(pubs)) != n {
		return false
	}
	for i, p := range pubs {
		if p.Offset != after+1+uint64(i) {
			return false
		}
	}
	return true
}
