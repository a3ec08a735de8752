import assert from 'node:assert/strict';
import { isoWeek, selectRetention, type RetentionPoint } from '../../core/retention/gfs.ts';
import { isHvError } from '../../core/errors.ts';

/** One point a day at 06:00 UTC from `from` to `to` inclusive (ids are the dates). */
function daily(vm: string, from: string, to: string): RetentionPoint[] {
  const out: RetentionPoint[] = [];
  for (let t = Date.parse(`${from}T06:00:00Z`); t <= Date.parse(`${to}T06:00:00Z`); t += 86_400_000) {
    const day = new Date(t).toISOString().slice(0, 10);
    out.push({ id: `${vm}-${day}`, vm, createdAt: `${day}T06:00:00Z` });
  }
  return out;
}

const NOW = new Date('2026-01-01T00:00:00Z');
const kept = (ds: { keep: boolean; createdAt: string }[]) => ds.filter((d) => d.keep).map((d) => d.createdAt.slice(0, 10)).sort().reverse();

describe('retention GFS selection', () => {
  it('keeps exactly the hand-computed points over two years of daily points', () => {
    const points = daily('web01', '2024-01-01', '2025-12-31');
    assert.equal(points.length, 731);
    const ds = selectRetention(points, { keepLast: 3, daily: 5, weekly: 4, monthly: 6, yearly: 3 }, NOW);
    // Worked out by hand with a calendar (2025-12-31 is a Wednesday):
    //   last 3:    Dec 31, 30, 29
    //   daily 5:   Dec 31, 30, 29, 28, 27
    //   weekly 4:  ISO 2026-W01 (Mon Dec 29 - Sun Jan 4) -> Dec 31; 2025-W52 -> Sun Dec 28;
    //              2025-W51 -> Sun Dec 21; 2025-W50 -> Sun Dec 14
    //   monthly 6: Dec 31, Nov 30, Oct 31, Sep 30, Aug 31, Jul 31
    //   yearly 3:  2025 -> 2025-12-31, 2024 -> 2024-12-31 (only two years have points)
    assert.deepEqual(kept(ds), [
      '2025-12-31', '2025-12-30', '2025-12-29', '2025-12-28', '2025-12-27', '2025-12-21', '2025-12-14',
      '2025-11-30', '2025-10-31', '2025-09-30', '2025-08-31', '2025-07-31', '2024-12-31',
    ]);
    const byDay = new Map(ds.map((d) => [d.createdAt.slice(0, 10), d]));
    assert.deepEqual(byDay.get('2025-12-31')!.reasons, ['last', 'daily 2025-12-31', 'weekly 2026-W01', 'monthly 2025-12', 'yearly 2025']);
    assert.deepEqual(byDay.get('2025-12-28')!.reasons, ['daily 2025-12-28', 'weekly 2025-W52']);
    assert.deepEqual(byDay.get('2024-12-31')!.reasons, ['yearly 2024']);
    assert.deepEqual(byDay.get('2025-06-30')!.reasons, ['not kept by any rule']);
    assert.equal(ds.filter((d) => !d.keep).length, 731 - 13);
  });

  it('counts ISO weeks across the year boundary (2024-W52, 2025-W01)', () => {
    assert.equal(isoWeek(new Date('2024-12-30T00:00:00Z')), '2025-W01');
    assert.equal(isoWeek(new Date('2024-12-29T23:59:59Z')), '2024-W52');
    assert.equal(isoWeek(new Date('2021-01-03T00:00:00Z')), '2020-W53');
    const ds = selectRetention(daily('vm', '2024-12-20', '2025-01-02'), { weekly: 3 }, NOW);
    // 2025-W01 = Mon 2024-12-30 .. -> newest Thu 2025-01-02; 2024-W52 -> Sun Dec 29; 2024-W51 -> Sun Dec 22
    assert.deepEqual(kept(ds), ['2025-01-02', '2024-12-29', '2024-12-22']);
  });

  it('skips months without points when counting monthly buckets', () => {
    const points = [...daily('vm', '2025-01-10', '2025-01-12'), ...daily('vm', '2025-03-01', '2025-03-02'), ...daily('vm', '2025-04-05', '2025-04-05')];
    assert.deepEqual(kept(selectRetention(points, { monthly: 3 }, NOW)), ['2025-04-05', '2025-03-02', '2025-01-12']);
  });

  it('decides per VM and keeps points dated after now', () => {
    const points = [...daily('a', '2025-12-01', '2025-12-03'), ...daily('b', '2025-11-01', '2025-11-02'), { id: 'future', vm: 'a', createdAt: '2026-02-01T00:00:00Z' }];
    const ds = selectRetention(points, { keepLast: 1 }, NOW);
    assert.deepEqual(ds.filter((d) => d.keep).map((d) => d.id).sort(), ['a-2025-12-03', 'b-2025-11-02', 'future']);
    assert.deepEqual(ds.find((d) => d.id === 'future')!.reasons, ['dated after now']);
    assert.deepEqual(ds.map((d) => d.id), points.map((p) => p.id), 'decisions come back in the input order');
  });

  it('refuses a policy that keeps nothing or has bad counts', () => {
    assert.throws(() => selectRetention([], {}, NOW), (e) => isHvError(e, 'ERR_INVALID_ARGUMENT') && /keeps nothing/.test(e.message));
    assert.throws(() => selectRetention([], { daily: 0 }, NOW), /keeps nothing/);
    assert.throws(() => selectRetention([], { weekly: -1 }, NOW), /weekly/);
  });
});
