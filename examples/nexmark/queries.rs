//! The Nexmark queries as rill jobs, with the semantics of the official Flink SQL texts
//! (github.com/nexmark/nexmark, `nexmark-flink/src/main/resources/queries/`): each takes the
//! events (with event time) and returns the result rows as CSV lines, in the SELECT's order.

use std::time::Duration;

use nexmark::event::{Auction, Bid, Event, Person};
use rill::prelude::*;
use rill::{ListState, MapState};

use crate::events::field;

/// Ten seconds, the queries' window size.
const TEN_SECONDS_MS: i64 = 10_000;

fn bids(events: DataStream<Event>) -> DataStream<Bid> {
    events.flat_map(|e: Event| match e {
        Event::Bid(bid) => Some(bid),
        _ => None,
    })
}

fn auctions(events: DataStream<Event>) -> DataStream<Auction> {
    events.flat_map(|e: Event| match e {
        Event::Auction(auction) => Some(auction),
        _ => None,
    })
}

fn persons(events: DataStream<Event>) -> DataStream<Person> {
    events.flat_map(|e: Event| match e {
        Event::Person(person) => Some(person),
        _ => None,
    })
}

fn bid_time(bid: &Bid) -> i64 {
    bid.date_time as i64
}

/// `auction, bidder, price, dateTime, extra` of a bid.
fn bid_row(bid: &Bid) -> String {
    format!("{},{},{},{},{}", bid.auction, bid.bidder, bid.price, bid.date_time, field(&bid.extra))
}

/// q0: every bid, passed through.
pub(crate) fn q0(events: DataStream<Event>) -> DataStream<String> {
    bids(events).map(|bid: Bid| bid_row(&bid))
}

/// q1: bids with the price in euros (`0.908 * price`, a decimal with three places).
pub(crate) fn q1(events: DataStream<Event>) -> DataStream<String> {
    bids(events).map(|bid: Bid| {
        let milli = bid.price as u128 * 908;
        format!(
            "{},{},{}.{:03},{},{}",
            bid.auction,
            bid.bidder,
            milli / 1000,
            milli % 1000,
            bid.date_time,
            field(&bid.extra)
        )
    })
}

/// q2: `auction, price` of the bids on every 123rd auction.
pub(crate) fn q2(events: DataStream<Event>) -> DataStream<String> {
    bids(events)
        .filter(|bid: &Bid| bid.auction.is_multiple_of(123))
        .map(|bid: Bid| format!("{},{}", bid.auction, bid.price))
}

/// q3: `name, city, state, id` of the category-10 auctions of sellers in Oregon, Idaho or
/// California: a regular inner join (the generator writes states in lower case, compared ignoring
/// case).
pub(crate) fn q3(events: DataStream<Event>) -> DataStream<String> {
    let auctions = auctions(events.clone()).filter(|a: &Auction| a.category == 10);
    let persons = persons(events).filter(|p: &Person| ["or", "id", "ca"].contains(&p.state.to_lowercase().as_str()));
    auctions.key_by(|a: &Auction| a.seller).connect(persons.key_by(|p: &Person| p.id)).process(
        |state: &mut StateRegistry<'_, usize>| {
            Ok(SellerJoin { seller: state.value("seller")?, waiting: state.list("waiting")? })
        },
    )
}

/// q3's join: a seller's auctions wait for the seller (persons come once per id).
struct SellerJoin {
    seller: ValueState<usize, Person>,
    waiting: ListState<usize, usize>,
}

fn q3_row(person: &Person, auction: usize) -> String {
    format!("{},{},{},{auction}", field(&person.name), field(&person.city), field(&person.state))
}

impl KeyedCoProcessFunction<usize, Auction, Person, String> for SellerJoin {
    fn process1(
        &mut self,
        auction: Auction,
        ctx: &mut KeyedContext<'_, usize>,
        out: &mut Collector<String>,
    ) -> OperatorResult {
        match self.seller.get(ctx.state())? {
            Some(person) => out.emit(q3_row(&person, auction.id)),
            None => self.waiting.add(ctx.state(), auction.id)?,
        }
        Ok(())
    }

    fn process2(
        &mut self,
        person: Person,
        ctx: &mut KeyedContext<'_, usize>,
        out: &mut Collector<String>,
    ) -> OperatorResult {
        for auction in self.waiting.get(ctx.state())? {
            out.emit(q3_row(&person, auction));
        }
        self.waiting.clear(ctx.state())?;
        self.seller.set(ctx.state(), person)?;
        Ok(())
    }
}

/// q5: hot items: per sliding window (10 s, every 2 s) the auctions with the most bids,
/// `auction, num`.
pub(crate) fn q5(events: DataStream<Event>) -> DataStream<String> {
    let window = SlidingEventTimeWindows::of(Duration::from_secs(10), Duration::from_secs(2));
    bids(events)
        .key_by(|bid: &Bid| bid.auction)
        .window(window, bid_time)
        .aggregate(Count)
        .key_by(|w: &Windowed<usize, u64>| (w.window.start, w.window.end))
        .process_with_timestamps(
            |w: &Windowed<usize, u64>| w.window.max_timestamp(),
            |state: &mut StateRegistry<'_, (i64, i64)>| Ok(HottestOfWindow { counts: state.list("counts")? }),
        )
}

/// q5's second stage: a window's counts, until every subtask's are in (the watermark passed
/// the window), then the auctions whose count is the window's largest.
struct HottestOfWindow {
    counts: ListState<(i64, i64), (usize, u64)>,
}

impl KeyedProcessFunction<(i64, i64), Windowed<usize, u64>, String> for HottestOfWindow {
    fn process(
        &mut self,
        w: Windowed<usize, u64>,
        ctx: &mut KeyedContext<'_, (i64, i64)>,
        _out: &mut Collector<String>,
    ) -> OperatorResult {
        self.counts.add(ctx.state(), (w.key, w.value))?;
        ctx.register_event_time_timer(w.window.max_timestamp())?;
        Ok(())
    }

    fn on_timer(
        &mut self,
        _timestamp_ms: i64,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, (i64, i64)>,
        out: &mut Collector<String>,
    ) -> OperatorResult {
        let counts = self.counts.get(ctx.state())?;
        let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
        for (auction, n) in counts.into_iter().filter(|(_, n)| *n >= max) {
            out.emit(format!("{auction},{n}"));
        }
        self.counts.clear(ctx.state())?;
        Ok(())
    }
}

/// q7: highest bid: the bids whose price is the highest of a tumbling 10 s window and whose time
/// is within the 10 s up to that window's end (both inclusive), `auction, price, bidder,
/// dateTime, extra`.
///
/// The SQL joins every bid with the windows' maxima by price; a bid can only meet the maximum
/// of its own window, or of the window before when it falls exactly on that window's end. So
/// each window keeps only its bids of its highest price so far and its bids at its first
/// instant, and is written once the watermark passes its end (a global aggregation, as Flink's).
pub(crate) fn q7(events: DataStream<Event>) -> DataStream<String> {
    bids(events).key_by(|_: &Bid| 0u8).process_with_timestamps(bid_time, |state: &mut StateRegistry<'_, u8>| {
        Ok(HighestBids { windows: state.map("windows")? })
    })
}

/// What q7 keeps of one window: its highest price so far, its bids of that price, and its bids
/// at its first instant (which meet the window before's maximum).
#[derive(Clone, Default, rill::serde::Serialize, rill::serde::Deserialize)]
#[serde(crate = "rill::serde")]
struct WindowTop {
    max: usize,
    top: Vec<Bid>,
    at_start: Vec<Bid>,
}

struct HighestBids {
    windows: MapState<u8, i64, WindowTop>,
}

fn q7_row(bid: &Bid) -> String {
    format!("{},{},{},{},{}", bid.auction, bid.price, bid.bidder, bid.date_time, field(&bid.extra))
}

impl KeyedProcessFunction<u8, Bid, String> for HighestBids {
    fn process(&mut self, bid: Bid, ctx: &mut KeyedContext<'_, u8>, _out: &mut Collector<String>) -> OperatorResult {
        let at = bid_time(&bid);
        let start = window_start(at);
        let mut window = self.windows.get(ctx.state(), &start)?.unwrap_or_default();
        if at == start {
            window.at_start.push(bid.clone());
        }
        if bid.price > window.max || window.top.is_empty() {
            window.max = bid.price;
            window.top = vec![bid];
        } else if bid.price == window.max {
            window.top.push(bid);
        }
        self.windows.put(ctx.state(), start, window)?;
        // Written once every bid up to the window's end (inclusive) is in.
        ctx.register_event_time_timer(start + TEN_SECONDS_MS)?;
        Ok(())
    }

    fn on_timer(
        &mut self,
        end: i64,
        _: TimeDomain,
        ctx: &mut KeyedContext<'_, u8>,
        out: &mut Collector<String>,
    ) -> OperatorResult {
        let Some(window) = self.windows.take(ctx.state(), &(end - TEN_SECONDS_MS))? else { return Ok(()) };
        for bid in &window.top {
            out.emit(q7_row(bid));
        }
        if let Some(mut next) = self.windows.get(ctx.state(), &end)? {
            for bid in next.at_start.iter().filter(|b| b.price == window.max) {
                out.emit(q7_row(bid));
            }
            next.at_start.clear();
            self.windows.put(ctx.state(), end, next)?;
        }
        Ok(())
    }
}

/// q8: new users: the persons who opened an auction in the tumbling 10 s window in which they
/// were created, `id, name, starttime`.
pub(crate) fn q8(events: DataStream<Event>) -> DataStream<String> {
    let persons = persons(events.clone());
    let auctions = auctions(events);
    persons.key_by(|p: &Person| p.id).connect(auctions.key_by(|a: &Auction| a.seller)).process_with_timestamps(
        |p: &Person| p.date_time as i64,
        |a: &Auction| a.date_time as i64,
        |state: &mut StateRegistry<'_, usize>| {
            Ok(NewSellers { names: state.map("names")?, selling: state.map("selling")? })
        },
    )
}

/// q8's window join: per person and window, the name (persons side) and whether they sold
/// (auctions side); a row once both are there, state dropped when the window has passed.
struct NewSellers {
    names: MapState<usize, i64, String>,
    selling: MapState<usize, i64, bool>,
}

fn window_start(at: i64) -> i64 {
    at - at.rem_euclid(TEN_SECONDS_MS)
}

impl NewSellers {
    /// Writes the row of `(person, window)` if both sides are there and it was not written.
    fn join(&mut self, start: i64, ctx: &mut KeyedContext<'_, usize>, out: &mut Collector<String>) -> OperatorResult {
        let (Some(name), Some(false)) = (self.names.get(ctx.state(), &start)?, self.selling.get(ctx.state(), &start)?)
        else {
            return Ok(());
        };
        out.emit(format!("{},{},{start}", ctx.key(), field(&name)));
        self.selling.put(ctx.state(), start, true)?;
        Ok(())
    }
}

impl KeyedCoProcessFunction<usize, Person, Auction, String> for NewSellers {
    fn process1(
        &mut self,
        person: Person,
        ctx: &mut KeyedContext<'_, usize>,
        out: &mut Collector<String>,
    ) -> OperatorResult {
        let start = window_start(person.date_time as i64);
        self.names.put(ctx.state(), start, person.name)?;
        ctx.register_event_time_timer(start + TEN_SECONDS_MS - 1)?;
        self.join(start, ctx, out)
    }

    fn process2(
        &mut self,
        auction: Auction,
        ctx: &mut KeyedContext<'_, usize>,
        out: &mut Collector<String>,
    ) -> OperatorResult {
        let start = window_start(auction.date_time as i64);
        if self.selling.get(ctx.state(), &start)?.is_none() {
            self.selling.put(ctx.state(), start, false)?;
        }
        ctx.register_event_time_timer(start + TEN_SECONDS_MS - 1)?;
        self.join(start, ctx, out)
    }

    fn on_timer(
        &mut self,
        at: i64,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, usize>,
        _out: &mut Collector<String>,
    ) -> OperatorResult {
        let start = window_start(at);
        self.names.remove(ctx.state(), start)?;
        self.selling.remove(ctx.state(), start)?;
        Ok(())
    }
}

/// The winning bid of each auction: its highest bid within `[dateTime, expires]` (earliest first
/// among equal prices, then the lowest bidder), once the watermark passed `expires`.
fn winning_bids(events: DataStream<Event>) -> DataStream<(Auction, Bid)> {
    let auctions = auctions(events.clone());
    let bids = bids(events);
    auctions.key_by(|a: &Auction| a.id).connect(bids.key_by(|b: &Bid| b.auction)).process_with_timestamps(
        |a: &Auction| a.date_time as i64,
        bid_time,
        |state: &mut StateRegistry<'_, usize>| {
            Ok(WinningBid { auction: state.value("auction")?, best: state.value("best")?, early: state.list("early")? })
        },
    )
}

/// q4: the average winning price per category (`AVG` of a `BIGINT`: truncated), as
/// `category, average, at`, one line per category and time an auction of it closed; the answer
/// per category is its line with the largest `at`.
pub(crate) fn q4(events: DataStream<Event>) -> DataStream<String> {
    winning_bids(events)
        .map(|(auction, bid): (Auction, Bid)| (auction.category, bid.price as u64, auction.expires as i64))
        .key_by(|closed: &(usize, u64, i64)| closed.0)
        .process_with_timestamps(
            |closed: &(usize, u64, i64)| closed.2,
            |state: &mut StateRegistry<'_, usize>| {
                Ok(CategoryAverage { closing: state.map("closing")?, total: state.value("total")? })
            },
        )
}

/// q9: each auction with its winning bid, `id, itemName, description, initialBid, reserve,
/// dateTime, expires, seller, category, extra, auction, bidder, price, bid_dateTime, bid_extra`.
pub(crate) fn q9(events: DataStream<Event>) -> DataStream<String> {
    winning_bids(events).map(|(a, b): (Auction, Bid)| {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            a.id,
            field(&a.item_name),
            field(&a.description),
            a.initial_bid,
            a.reserve,
            a.date_time,
            a.expires,
            a.seller,
            a.category,
            field(&a.extra),
            b.auction,
            b.bidder,
            b.price,
            b.date_time,
            field(&b.extra)
        )
    })
}

/// Whether `b` beats `best`: a higher price, or the same price earlier, or by a lower bidder.
fn beats(b: &Bid, best: &Bid) -> bool {
    (std::cmp::Reverse(b.price), b.date_time, b.bidder) < (std::cmp::Reverse(best.price), best.date_time, best.bidder)
}

/// Per auction: the auction, its best bid so far, and bids that came before it (kept until the
/// watermark passes them: an auction arriving later is too late for them).
struct WinningBid {
    auction: ValueState<usize, Auction>,
    best: ValueState<usize, Bid>,
    early: ListState<usize, Bid>,
}

impl WinningBid {
    fn consider(&mut self, auction: &Auction, bid: Bid, ctx: &mut KeyedContext<'_, usize>) -> OperatorResult {
        if !(auction.date_time..=auction.expires).contains(&bid.date_time) {
            return Ok(());
        }
        if self.best.get(ctx.state())?.is_none_or(|best| beats(&bid, &best)) {
            self.best.set(ctx.state(), bid)?;
        }
        Ok(())
    }
}

impl KeyedCoProcessFunction<usize, Auction, Bid, (Auction, Bid)> for WinningBid {
    fn process1(
        &mut self,
        auction: Auction,
        ctx: &mut KeyedContext<'_, usize>,
        _: &mut Collector<(Auction, Bid)>,
    ) -> OperatorResult {
        for bid in self.early.get(ctx.state())? {
            self.consider(&auction, bid, ctx)?;
        }
        self.early.clear(ctx.state())?;
        ctx.register_event_time_timer(auction.expires as i64)?;
        self.auction.set(ctx.state(), auction)?;
        Ok(())
    }

    fn process2(
        &mut self,
        bid: Bid,
        ctx: &mut KeyedContext<'_, usize>,
        _: &mut Collector<(Auction, Bid)>,
    ) -> OperatorResult {
        match self.auction.get(ctx.state())? {
            Some(auction) => self.consider(&auction, bid, ctx),
            None => {
                ctx.register_event_time_timer(bid.date_time as i64)?;
                self.early.add(ctx.state(), bid)?;
                Ok(())
            }
        }
    }

    fn on_timer(
        &mut self,
        at: i64,
        _: TimeDomain,
        ctx: &mut KeyedContext<'_, usize>,
        out: &mut Collector<(Auction, Bid)>,
    ) -> OperatorResult {
        if let Some(auction) = self.auction.get(ctx.state())?.filter(|a| a.expires as i64 <= at) {
            if let Some(best) = self.best.get(ctx.state())? {
                out.emit((auction, best));
            }
            self.auction.clear(ctx.state())?;
            self.best.clear(ctx.state())?;
        }
        let early = self.early.get(ctx.state())?;
        if !early.is_empty() {
            let kept: Vec<Bid> = early.into_iter().filter(|b| b.date_time as i64 > at).collect();
            self.early.set(ctx.state(), kept)?;
        }
        Ok(())
    }
}

/// q4's second stage, per category: winning prices wait by closing time until the watermark
/// passes it (other subtasks may still send earlier ones), then join the running total.
struct CategoryAverage {
    closing: MapState<usize, i64, Vec<u64>>,
    total: ValueState<usize, (u64, u64)>,
}

impl KeyedProcessFunction<usize, (usize, u64, i64), String> for CategoryAverage {
    fn process(
        &mut self,
        (_, price, at): (usize, u64, i64),
        ctx: &mut KeyedContext<'_, usize>,
        _: &mut Collector<String>,
    ) -> OperatorResult {
        self.closing.update(ctx.state(), &at, |prices| {
            let mut prices = prices.unwrap_or_default();
            prices.push(price);
            (Some(prices), ())
        })?;
        ctx.register_event_time_timer(at)?;
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        _: TimeDomain,
        ctx: &mut KeyedContext<'_, usize>,
        out: &mut Collector<String>,
    ) -> OperatorResult {
        let Some(prices) = self.closing.take(ctx.state(), &at)? else { return Ok(()) };
        let (sum, count) = self.total.get(ctx.state())?.unwrap_or_default();
        let (sum, count) = (sum + prices.iter().sum::<u64>(), count + prices.len() as u64);
        self.total.set(ctx.state(), (sum, count))?;
        out.emit(format!("{},{},{at}", ctx.key(), sum / count.max(1)));
        Ok(())
    }
}
