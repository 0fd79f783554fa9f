// A run whose model is silent for longer than the server's keep-alive interval, streamed
// through the official openai Node SDK: createAndRunStream, then runs.stream, then
// submitToolOutputsStream. Prints one JSON object with what it saw.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY, maxRetries: 0 });
const out = { texts: [], statuses: [], events: 0 };

const assistant = await client.beta.assistants.create({
  model: "m",
  tools: [{ type: "function", function: { name: "get_weather", parameters: {
    type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }],
});

let text = "";
const first = client.beta.threads
  .createAndRunStream({ assistant_id: assistant.id, thread: { messages: [{ role: "user", content: "hi" }] } })
  .on("event", () => { out.events += 1; })
  .on("textDelta", (delta) => { text += delta.value; });
const run = await first.finalRun();
out.statuses.push(run.status);
out.texts.push(text);
if (process.env.FIRST_ONLY) {
  console.log(JSON.stringify(out));
  process.exit(0);
}

text = "";
const second = client.beta.threads.runs
  .stream(run.thread_id, { assistant_id: assistant.id })
  .on("event", () => { out.events += 1; });
const paused = await second.finalRun();
out.statuses.push(paused.status);

const calls = paused.required_action.submit_tool_outputs.tool_calls;
const third = client.beta.threads.runs
  .submitToolOutputsStream(paused.id, {
    thread_id: paused.thread_id,
    tool_outputs: calls.map((c) => ({ tool_call_id: c.id, output: "sunny" })),
  })
  .on("event", () => { out.events += 1; })
  .on("textDelta", (delta) => { text += delta.value; });
const done = await third.finalRun();
out.statuses.push(done.status);
out.texts.push(text);
console.log(JSON.stringify(out));
