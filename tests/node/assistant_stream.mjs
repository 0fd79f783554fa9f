// Drives the official openai Node SDK against assistantd, the way the seed's examples do:
// runs.stream with .on('textDelta' | 'toolCallCreated' | 'toolCallDelta'), finalRun(),
// submitToolOutputsStream, createAndPoll. Prints one JSON object with what it saw.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY, maxRetries: 0 });
const out = { text: "", toolCalls: [], toolArgs: "", events: [], statuses: [] };

const assistant = await client.beta.assistants.create({
  model: "gpt-4o",
  tools: [{ type: "function", function: { name: "get_weather", parameters: {
    type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }],
});
const thread = await client.beta.threads.create({ messages: [{ role: "user", content: "Weather in Paris?" }] });

const first = client.beta.threads.runs
  .stream(thread.id, { assistant_id: assistant.id })
  .on("event", (e) => out.events.push(e.event))
  .on("toolCallCreated", (call) => out.toolCalls.push(call.function.name))
  .on("toolCallDelta", (delta) => { if (delta.function?.arguments) out.toolArgs += delta.function.arguments; });
const run = await first.finalRun();
out.statuses.push(run.status);

const calls = run.required_action.submit_tool_outputs.tool_calls;
const second = client.beta.threads.runs
  .submitToolOutputsStream(run.id, {
    thread_id: thread.id,
    tool_outputs: calls.map((c) => ({ tool_call_id: c.id, output: "sunny" })),
  })
  .on("textDelta", (delta) => { out.text += delta.value; });
const done = await second.finalRun();
out.statuses.push(done.status);
out.finalMessages = (await second.finalMessages()).map((m) => m.content[0].text.value);

const polled = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id });
out.statuses.push(polled.status);

const page = await client.beta.threads.messages.list(thread.id, { limit: 2, order: "asc" });
const walked = [];
for await (const m of page) walked.push(m.id);
out.walked = walked.length;

try {
  await client.beta.assistants.retrieve("asst_missing");
} catch (err) {
  out.notFound = { status: err.status, message: err.error?.message ?? err.message };
}
console.log(JSON.stringify(out));
