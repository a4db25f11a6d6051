//! The model's behaviour, on tokio's paused clock and the engine's own timestamps (when each
//! token's step was due to end): the tests compare the times the model gives, free of timer
//! noise.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::engine::{Engine, Event, Usage};
use super::params::Profile;
use super::tokens::Prompt;
use crate::shutdown::{self, StopSender};

/// An engine with `profile`, stopped when dropped.
struct Running {
    engine: Engine,
    _stop: StopSender,
}

fn start(profile: Profile) -> Running {
    let (stop, stopped) = shutdown::channel();
    Running {
        engine: Engine::start(profile, 1.0, stopped),
        _stop: stop,
    }
}

/// What one request saw.
#[derive(Debug)]
struct Timeline {
    ttft: Duration,
    /// Gaps between consecutive tokens.
    gaps: Vec<Duration>,
    text: String,
    usage: Usage,
}

async fn follow(submitted: Instant, mut events: UnboundedReceiver<Event>) -> Timeline {
    let mut ttft = None;
    let mut last = submitted;
    let mut gaps = Vec::new();
    let mut text = String::new();
    loop {
        match events.recv().await.expect("the engine runs") {
            Event::Token {
                text: token,
                at: now,
            } => {
                match ttft {
                    None => ttft = Some(now - submitted),
                    Some(_) => gaps.push(now - last),
                }
                last = now;
                text.push_str(token);
            }
            Event::Done(usage) => {
                return Timeline {
                    ttft: ttft.expect("a token before Done"),
                    gaps,
                    text,
                    usage,
                };
            }
        }
    }
}

async fn run(engine: &Engine, text: &str, max_tokens: usize) -> Timeline {
    let prompt = Prompt::new(text, engine_block_size());
    let submitted = Instant::now();
    follow(submitted, engine.submit(prompt, max_tokens)).await
}

fn engine_block_size() -> usize {
    Profile::default().block_size
}

/// Exactly `tokens` tokens of text drawn from `seed`: different seeds share no block.
fn text(seed: &str, tokens: usize) -> String {
    crate::llm_load::text::labelled_words(seed, tokens as u32)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::test(start_paused = true)]
async fn a_cached_prefix_makes_the_first_token_come_sooner() {
    let running = start(Profile::default());
    let engine = &running.engine;
    let shared = text("sys", 2000);
    let first = run(engine, &format!("{shared} question one"), 4).await;
    let second = run(engine, &format!("{shared} question two, longer"), 4).await;

    assert_eq!(first.usage.cached_tokens, 0);
    let prompt = second.usage.prompt_tokens;
    let cached = second.usage.cached_tokens;
    assert!(cached >= 1984 && cached % 16 == 0, "{cached} of {prompt}");
    // Exactly the model: one step prefilling what is not cached.
    let p = Profile::default();
    let uncached_ttft = p.step_time(first.usage.prompt_tokens, 0);
    assert_eq!(first.ttft, uncached_ttft);
    assert_eq!(second.ttft, p.step_time(prompt - cached, 0));
    assert!(
        second.ttft.as_secs_f64() < 0.5 * first.ttft.as_secs_f64(),
        "cached {:?} vs uncached {:?}",
        second.ttft,
        first.ttft
    );
    // Decoding is the same for both: one sequence, one token per step.
    assert_eq!(first.gaps, vec![p.step_time(0, 1); 3]);
    assert_eq!(second.gaps, first.gaps);

    let stats = engine.snapshot().stats;
    assert_eq!(stats.prefix_hits, cached as u64);
    assert_eq!(
        stats.prefix_queries,
        (first.usage.prompt_tokens + prompt) as u64
    );
    assert_eq!(stats.finished_length, 2);
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_queues_requests_and_their_first_token_waits() {
    let profile = Profile {
        max_running: 2,
        ..Profile::default()
    };
    let running = start(profile);
    let engine = running.engine.clone();
    let mut followers = Vec::new();
    for i in 0..6 {
        let prompt = Prompt::new(&text(&format!("r{i}"), 100), 16);
        let submitted = Instant::now();
        let events = engine.submit(prompt, 50);
        followers.push(tokio::spawn(follow(submitted, events)));
    }
    // Once the first step is under way: two run, four wait.
    tokio::time::sleep(Duration::from_micros(1)).await;
    let snapshot = engine.snapshot();
    assert_eq!((snapshot.running, snapshot.waiting), (2, 4));

    let mut ttfts = Vec::new();
    for follower in followers {
        ttfts.push(follower.await.unwrap().ttft);
    }
    // The first two share the first step; each later pair waits for a pair to finish 50
    // tokens.
    assert_eq!(ttfts[0], ttfts[1]);
    assert!(
        ttfts[2] > ttfts[1] + profile.step_time(0, 2) * 40,
        "{ttfts:?}"
    );
    assert!(
        ttfts[4] > ttfts[2] + profile.step_time(0, 2) * 40,
        "{ttfts:?}"
    );
    let snapshot = engine.snapshot();
    assert_eq!((snapshot.running, snapshot.waiting), (0, 0));
    assert_eq!(snapshot.kv_usage, 0.0, "every block freed");
    assert_eq!(snapshot.stats.queue_time.count(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_request_waits_for_kv_blocks_when_the_batch_has_room() {
    // 20 blocks; each request needs ceil((100 + 100 - 1) / 16) = 13: one at a time.
    let profile = Profile {
        kv_blocks: 20,
        ..Profile::default()
    };
    let running = start(profile);
    let engine = running.engine.clone();
    let a = engine.submit(Prompt::new(&text("a", 100), 16), 100);
    let b = engine.submit(Prompt::new(&text("b", 100), 16), 100);
    let now = Instant::now();
    let (a, b) = (tokio::spawn(follow(now, a)), tokio::spawn(follow(now, b)));
    tokio::time::sleep(Duration::from_micros(1)).await;
    let snapshot = engine.snapshot();
    assert_eq!((snapshot.running, snapshot.waiting), (1, 1));
    assert!(snapshot.kv_usage > 0.0);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert!(b.ttft > a.ttft + a.gaps.iter().sum::<Duration>());
}

#[tokio::test(start_paused = true)]
async fn time_per_output_token_grows_with_the_batch() {
    let profile = Profile::default();
    let running = start(profile);
    let engine = running.engine.clone();
    let alone = run(&engine, &text("solo", 50), 20).await;

    let mut batch = Vec::new();
    for i in 0..64 {
        let prompt = Prompt::new(&text(&format!("b{i}"), 50), 16);
        let events = engine.submit(prompt, 20);
        batch.push(tokio::spawn(follow(Instant::now(), events)));
    }
    let mut together = Vec::new();
    for follower in batch {
        together.push(follower.await.unwrap());
    }
    assert_eq!(alone.gaps[5], profile.step_time(0, 1));
    assert_eq!(together[0].gaps[5], profile.step_time(0, 64));
    assert!(us(together[0].gaps[5]) > us(alone.gaps[5]) + 60.0 * profile.decode_us_per_token);
}

#[tokio::test(start_paused = true)]
async fn a_long_prompt_is_prefilled_in_chunks_of_the_step_budget() {
    let profile = Profile {
        max_batched_tokens: 512,
        ..Profile::default()
    };
    let running = start(profile);
    let engine = running.engine.clone();
    let long = Prompt::new(&text("long", 2000), 16);
    let tokens = long.tokens;
    let timeline = follow(Instant::now(), engine.submit(long, 2)).await;
    // ceil(tokens / 512) steps, each with a chunk of at most 512 tokens.
    let steps = tokens.div_ceil(512);
    let expected: Duration = (0..steps)
        .map(|i| profile.step_time((tokens - i * 512).min(512), 0))
        .sum();
    assert_eq!(timeline.ttft, expected);
}

#[tokio::test(start_paused = true)]
async fn the_cache_stays_within_its_capacity_and_evicts_the_oldest_prefixes() {
    let profile = Profile {
        kv_blocks: 64,
        ..Profile::default()
    };
    let running = start(profile);
    let engine = &running.engine;
    let prompts: Vec<String> = (0..12).map(|i| text(&format!("p{i}x"), 160)).collect();
    for prompt in &prompts {
        run(engine, prompt, 1).await;
        let (cached, _) = engine.cache_contents();
        assert!(cached <= 64, "{cached}");
    }
    let (_, evictions) = engine.cache_contents();
    assert!(evictions > 0);
    // The latest prompt is still cached, the first was evicted.
    let again_last = run(engine, &prompts[11], 1).await;
    assert!(
        again_last.usage.cached_tokens >= 144,
        "{:?}",
        again_last.usage
    );
    let again_first = run(engine, &prompts[0], 1).await;
    assert_eq!(again_first.usage.cached_tokens, 0);
}

#[tokio::test(start_paused = true)]
async fn the_next_turn_of_a_conversation_hits_the_blocks_of_the_reply() {
    let running = start(Profile::default());
    let engine = &running.engine;
    let turn1 = format!(
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n",
        text("q", 300)
    );
    let first = run(engine, &turn1, 100).await;
    let turn2 = format!(
        "{turn1}{}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nand then?<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n",
        first.text
    );
    let second = run(engine, &turn2, 10).await;
    // Everything but the last partial block of prompt + reply is found cached.
    let shared = first.usage.prompt_tokens + first.usage.completion_tokens - 1;
    assert_eq!(second.usage.cached_tokens, shared / 16 * 16, "{second:?}");
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_client_left_is_aborted_and_its_blocks_freed() {
    let running = start(Profile::default());
    let engine = running.engine.clone();
    let mut events = engine.submit(Prompt::new(&text("gone", 100), 16), 1000);
    assert!(matches!(events.recv().await, Some(Event::Token { .. })));
    assert!(engine.snapshot().kv_usage > 0.0);
    drop(events);
    tokio::time::sleep(Profile::default().step_time(0, 1) * 3).await;
    let snapshot = engine.snapshot();
    assert_eq!((snapshot.running, snapshot.kv_usage), (0, 0.0));
    assert_eq!(snapshot.stats.finished_length, 0);
}

#[tokio::test(start_paused = true)]
async fn speedup_divides_every_time() {
    let (stop, stopped) = shutdown::channel();
    let fast = Engine::start(Profile::default(), 10.0, stopped);
    let timeline = follow(
        Instant::now(),
        fast.submit(Prompt::new(&text("fast", 500), 16), 3),
    )
    .await;
    let p = Profile::default();
    let modelled = p.step_time(timeline.usage.prompt_tokens, 0);
    assert_eq!(timeline.ttft, modelled.div_f64(10.0));
    assert_eq!(timeline.gaps[0], p.step_time(0, 1).div_f64(10.0));
    let _ = stop.send(true);
}
