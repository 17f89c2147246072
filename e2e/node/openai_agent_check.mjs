// What a coding agent needs from llama-orch's OpenAI front door, with the official `openai`
// npm package: a tool call (whole and streamed), a tool-call round trip to a final answer, and
// logprobs. Prints one JSON report on stdout; e2e/tests/openai_agent.rs asserts on it.
//
//   node openai_agent_check.mjs --base-url http://127.0.0.1:PORT/v1 --pool agent
//
// The package is found through NODE_PATH (scripts/test.sh installs it in
// ${LLORCH_CACHE:-~/.cache/llama-orch-ci}/node-openai/node_modules).
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

const require = createRequire(import.meta.url);
const { default: OpenAI } = await import(require.resolve("openai"));

const { values: args } = parseArgs({
  options: { "base-url": { type: "string" }, pool: { type: "string" }, "embed-pool": { type: "string" } },
});
const client = new OpenAI({ baseURL: args["base-url"], apiKey: "unused", maxRetries: 0, timeout: 30_000 });
const model = args.pool;

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, days: { type: "integer" } },
      required: ["city", "days"],
    },
  },
};
const ask = [{ role: "user", content: "What is the weather in Oslo?" }];

const whole = await client.chat.completions.create({
  model, messages: ask, tools: [weather], tool_choice: "required", max_tokens: 32,
});
const call = whole.choices[0].message.tool_calls[0];

const streamed = { name: "", arguments: "", id: null, finish_reason: null, chunks: 0 };
const stream = await client.chat.completions.create({
  model, messages: ask, tools: [weather], tool_choice: "required", max_tokens: 32, stream: true,
});
for await (const chunk of stream) {
  const choice = chunk.choices[0];
  if (!choice) continue;
  for (const d of choice.delta.tool_calls ?? []) {
    streamed.chunks += 1;
    streamed.id = d.id ?? streamed.id;
    streamed.name += d.function?.name ?? "";
    streamed.arguments += d.function?.arguments ?? "";
  }
  streamed.finish_reason = choice.finish_reason ?? streamed.finish_reason;
}
streamed.arguments = JSON.parse(streamed.arguments);

// The agent loop: the assistant's tool call, the tool's result, then the answer.
const messages = [...ask, whole.choices[0].message,
  { role: "tool", tool_call_id: call.id, content: "Sunny, 21 C" }];
const final = await client.chat.completions.create({ model, messages, tools: [weather], max_tokens: 8 });

const lp = await client.chat.completions.create({
  model, messages: ask, max_tokens: 5, logprobs: true, top_logprobs: 2,
});

// Embeddings: the SDK asks for base64 by default and decodes it to floats.
const emb = await client.embeddings.create({ model: args["embed-pool"], input: ["hello world", "good night"] });

console.log(JSON.stringify({
  embeddings: { count: emb.data.length, dims: emb.data.map((d) => d.embedding.length), usage: emb.usage },
  tool_calls: {
    whole: {
      call: { id: call.id, type: call.type, name: call.function.name, arguments: JSON.parse(call.function.arguments) },
      content: whole.choices[0].message.content,
      finish_reason: whole.choices[0].finish_reason,
      usage: whole.usage,
    },
    streamed,
  },
  agent_loop: {
    first_finish: whole.choices[0].finish_reason,
    tool: call.function.name,
    final_finish: final.choices[0].finish_reason,
    final_content: final.choices[0].message.content,
    final_tool_calls: final.choices[0].message.tool_calls ?? null,
  },
  logprobs: {
    whole_entries: lp.choices[0].logprobs.content.length,
    completion_tokens: lp.usage.completion_tokens,
    joined_tokens: lp.choices[0].logprobs.content.map((e) => e.token).join(""),
    whole_text: lp.choices[0].message.content,
  },
}));
