export const dynamic = "force-dynamic";

export async function GET(request, { params }) {
  const { id } = await params;
  if (id === "broken") return Response.json({ error: "boom" }, { status: 500 });
  return Response.json({ id });
}
