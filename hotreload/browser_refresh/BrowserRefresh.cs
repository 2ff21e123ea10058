// Browser refresh for ASP.NET Core apps run by `hotreload watch` in Development.
//
// hotreload names this assembly in ASPNETCORE_HOSTINGSTARTUPASSEMBLIES and resolves it from its cache, so the web
// host loads it with no change to the app's code. Its startup filter puts one middleware first in the pipeline:
//   /_hotreload/refresh.js   the client script (refresh.js, an embedded resource)
//   /_hotreload/events       Server-Sent Events: "hello <server id>" on connect, then every Notify(message)
//   HTML documents           the script tag inserted before the last </body> (or appended), Content-Length fixed
//   validated responses      "Cache-Control: no-cache" when they have an ETag or Last-Modified and no lifetime,
//                            so a reloaded page never shows a heuristically cached old static file
// hotreload calls RefreshHub.Notify through reflection: "reload" after an applied update, "css <path>" when a
// stylesheet under wwwroot changes, "reload <path>..." when another file there does.

using System;
using System.Collections.Concurrent;
using System.IO;
using System.IO.Pipelines;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

[assembly: HostingStartup(typeof(HotReload.BrowserRefresh.RefreshHostingStartup))]

namespace HotReload.BrowserRefresh;

/// <summary>Registers the startup filter ahead of the app's own services, so its middleware runs first.</summary>
public sealed class RefreshHostingStartup : IHostingStartup
{
    public void Configure(IWebHostBuilder builder) =>
        builder.ConfigureServices(services =>
            services.Insert(0, ServiceDescriptor.Transient<IStartupFilter, RefreshStartupFilter>()));
}

internal sealed class RefreshStartupFilter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        var stopping = app.ApplicationServices.GetService<IHostApplicationLifetime>()?.ApplicationStopping
                       ?? CancellationToken.None;
        app.Use(inner => new RefreshMiddleware(inner, stopping).InvokeAsync);
        next(app);
    };
}

/// <summary>The connected pages, and the one way hotreload talks to them.</summary>
public static class RefreshHub
{
    /// <summary>Differs in every process: a page that reconnects to another id knows the server restarted.</summary>
    public static readonly string ServerId = Guid.NewGuid().ToString("N");

    private static readonly ConcurrentDictionary<long, Channel<string>> Clients = new();
    private static long _lastId;

    /// <summary>Send <paramref name="message"/> to every connected page; returns how many. Thread-safe, never
    /// throws (a message on several lines is sent as one line).</summary>
    public static int Notify(string message)
    {
        try
        {
            var line = (message ?? "").Replace('\r', ' ').Replace('\n', ' ');
            var sent = 0;
            foreach (var client in Clients.Values)
            {
                if (client.Writer.TryWrite(line))
                    sent++;
            }
            return sent;
        }
        catch (Exception)
        {
            return 0;
        }
    }

    /// <summary>How many pages are connected now.</summary>
    public static int Connected => Clients.Count;

    internal static (long Id, ChannelReader<string> Messages) Connect()
    {
        var id = Interlocked.Increment(ref _lastId);
        var channel = Channel.CreateUnbounded<string>();
        Clients[id] = channel;
        return (id, channel.Reader);
    }

    internal static void Disconnect(long id)
    {
        if (Clients.TryRemove(id, out var channel))
            channel.Writer.TryComplete();
    }
}

internal sealed class RefreshMiddleware
{
    internal const string ScriptPath = "/_hotreload/refresh.js";
    internal const string EventsPath = "/_hotreload/events";
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);
    private static readonly Lazy<byte[]> Script = new(LoadScript);

    private readonly RequestDelegate _next;
    private readonly CancellationToken _stopping;

    public RefreshMiddleware(RequestDelegate next, CancellationToken stopping)
    {
        _next = next;
        _stopping = stopping;
    }

    public async Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path;
        if (path.Equals(ScriptPath, StringComparison.OrdinalIgnoreCase))
        {
            await ServeScriptAsync(context);
            return;
        }
        if (path.Equals(EventsPath, StringComparison.OrdinalIgnoreCase))
        {
            await ServeEventsAsync(context);
            return;
        }
        if (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method))
            context.Response.OnStarting(AlwaysRevalidate, context.Response);
        var inner = context.Features.Get<IHttpResponseBodyFeature>();
        if (inner is null || !IsDocumentRequest(context))
        {
            await _next(context);
            return;
        }
        var body = new InjectingBody(context, inner);
        context.Features.Set<IHttpResponseBodyFeature>(body);
        try
        {
            await _next(context);
            await body.FinishAsync();
        }
        finally
        {
            context.Features.Set(inner);
        }
    }

    /// <summary>A response with a validator (ETag, Last-Modified) and no lifetime, like a static file's: browsers
    /// would reuse it without asking for a while (heuristic freshness), and a page reloaded after a save would show
    /// the old file. "no-cache" makes them ask each time (a 304 when it did not change). Lifetimes the app sets
    /// stay.</summary>
    private static Task AlwaysRevalidate(object state)
    {
        var headers = ((HttpResponse)state).Headers;
        if ((headers.ContainsKey("ETag") || headers.ContainsKey("Last-Modified"))
            && !headers.ContainsKey("Cache-Control") && !headers.ContainsKey("Expires"))
            headers.CacheControl = "no-cache";
        return Task.CompletedTask;
    }

    /// <summary>A request for a page a browser shows: GET or POST, not a fetch, subresource or upgrade (browsers
    /// say which in Sec-Fetch-Dest; a client that sends none, like curl, counts as a document request).</summary>
    private static bool IsDocumentRequest(HttpContext context)
    {
        var request = context.Request;
        if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsPost(request.Method))
            return false;
        if (context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true)
            return false;
        var dest = request.Headers["Sec-Fetch-Dest"].ToString();
        return dest.Length == 0 || dest.Equals("document", StringComparison.OrdinalIgnoreCase)
                                || dest.Equals("iframe", StringComparison.OrdinalIgnoreCase);
    }

    private static byte[] LoadScript()
    {
        using var stream = typeof(RefreshMiddleware).Assembly.GetManifestResourceStream("refresh.js")
                           ?? throw new InvalidOperationException("refresh.js is not embedded");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    private static async Task ServeScriptAsync(HttpContext context)
    {
        var script = Script.Value;
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "text/javascript; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        context.Response.ContentLength = script.Length;
        if (!HttpMethods.IsHead(context.Request.Method))
            await context.Response.Body.WriteAsync(script, context.RequestAborted);
    }

    private async Task ServeEventsAsync(HttpContext context)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var (id, messages) = RefreshHub.Connect();
        // Ends when the page goes, or when the app stops: an open stream must not hold up a graceful shutdown.
        using var done = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping);
        var token = done.Token;
        try
        {
            await WriteAsync(response, $"data: hello {RefreshHub.ServerId}\n\n", token);
            Task<bool>? ready = null;
            while (!token.IsCancellationRequested)
            {
                ready ??= messages.WaitToReadAsync(token).AsTask();
                if (await Task.WhenAny(ready, Task.Delay(KeepAlive, token)) != ready)
                {
                    await WriteAsync(response, ": keep-alive\n\n", token);  // finds a page that is gone
                    continue;
                }
                if (!await ready)
                    break;
                ready = null;
                while (messages.TryRead(out var message))
                    await WriteAsync(response, $"data: {message}\n\n", token);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
        }
        finally
        {
            RefreshHub.Disconnect(id);
        }
    }

    private static async Task WriteAsync(HttpResponse response, string text, CancellationToken token)
    {
        await response.Body.WriteAsync(System.Text.Encoding.UTF8.GetBytes(text), token);
        await response.Body.FlushAsync(token);
    }
}

/// <summary>The response body while the app writes a document response. It decides on the first write, flush,
/// start or file send (when the headers are final): an HTML response without a Content-Encoding is kept in
/// memory and written at the end with the script inserted; anything else passes straight through to the
/// server's own body (file sends stay zero-copy).</summary>
internal sealed class InjectingBody : Stream, IHttpResponseBodyFeature
{
    private readonly HttpContext _context;
    private readonly IHttpResponseBodyFeature _inner;
    private MemoryStream? _buffer;
    private PipeWriter? _pipe;
    private bool _decided;
    private bool _finished;

    public InjectingBody(HttpContext context, IHttpResponseBodyFeature inner)
    {
        _context = context;
        _inner = inner;
    }

    private bool Injecting
    {
        get
        {
            if (!_decided)
            {
                _decided = true;
                if (HtmlInjection.Wanted(_context.Response))
                    _buffer = new MemoryStream();
            }
            return _buffer is not null;
        }
    }

    // ---- IHttpResponseBodyFeature ------------------------------------------------------------------------
    Stream IHttpResponseBodyFeature.Stream => this;

    PipeWriter IHttpResponseBodyFeature.Writer =>
        _pipe ?? (_decided && _buffer is null
            ? _inner.Writer
            : _pipe = PipeWriter.Create(this, new StreamPipeWriterOptions(leaveOpen: true)));

    void IHttpResponseBodyFeature.DisableBuffering()
    {
        if (!Injecting)
            _inner.DisableBuffering();
    }

    Task IHttpResponseBodyFeature.StartAsync(CancellationToken cancellationToken) =>
        Injecting ? Task.CompletedTask : _inner.StartAsync(cancellationToken);

    Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count,
                                                CancellationToken cancellationToken) =>
        Injecting
            ? SendFileFallback.SendFileAsync(this, path, offset, count, cancellationToken)
            : _inner.SendFileAsync(path, offset, count, cancellationToken);

    async Task IHttpResponseBodyFeature.CompleteAsync()
    {
        await FinishAsync();
        await _inner.CompleteAsync();
    }

    /// <summary>After the app is done: what the app's pipe writer holds goes out, and a kept HTML body is
    /// written with the script in it.</summary>
    public async Task FinishAsync()
    {
        if (_finished)
            return;
        _finished = true;
        if (_pipe is not null)
            await _pipe.CompleteAsync();
        if (_buffer is null)
            return;
        var original = _buffer.ToArray();
        var response = _context.Response;
        if (original.Length == 0 || response.HasStarted)
        {
            if (original.Length > 0)
                await _inner.Stream.WriteAsync(original, _context.RequestAborted);
            return;
        }
        var html = HtmlInjection.Inject(original);
        response.ContentLength = html.Length;
        await _inner.Stream.WriteAsync(html, _context.RequestAborted);
    }

    // ---- Stream ------------------------------------------------------------------------------------------
    // A kept body can be sought and cut, as HttpResponse.Clear() does (the developer exception page clears what
    // a failed page wrote before it writes its own): cut to nothing, the next write decides again.
    public override bool CanRead => false;
    public override bool CanSeek => _buffer is not null;
    public override bool CanWrite => true;
    public override long Length => Kept.Length;

    public override long Position
    {
        get => Kept.Position;
        set => Kept.Position = value;
    }

    private MemoryStream Kept => _buffer ?? throw new NotSupportedException("the response is not kept in memory");

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => Kept.Seek(offset, origin);

    public override void SetLength(long value)
    {
        Kept.SetLength(value);
        if (value == 0)
        {
            _buffer = null;
            _decided = false;
        }
    }

    public override void Write(byte[] buffer, int offset, int count) =>
        Write(new ReadOnlySpan<byte>(buffer, offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (Injecting)
            _buffer!.Write(buffer);
        else
            _inner.Stream.Write(buffer);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(new ReadOnlyMemory<byte>(buffer, offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!Injecting)
            return _inner.Stream.WriteAsync(buffer, cancellationToken);
        _buffer!.Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override void Flush()
    {
        if (!Injecting)
            _inner.Stream.Flush();
    }

    public override Task FlushAsync(CancellationToken cancellationToken) =>
        Injecting ? Task.CompletedTask : _inner.Stream.FlushAsync(cancellationToken);
}

/// <summary>Which responses get the script, and where it goes. Plain BCL code: hotreload's tests call it
/// directly.</summary>
public static class HtmlInjection
{
    public const string Tag = "<script src=\"/_hotreload/refresh.js\"></script>";
    private static readonly byte[] TagBytes = System.Text.Encoding.ASCII.GetBytes(Tag);
    private static readonly byte[] BodyEnd = System.Text.Encoding.ASCII.GetBytes("</body");

    internal static bool Wanted(HttpResponse response) =>
        response.StatusCode != StatusCodes.Status206PartialContent
        && IsHtml(response.ContentType)
        && (response.Headers.ContentEncoding.ToString() is "" or "identity");

    /// <summary>text/html in an encoding where "&lt;/body&gt;" is ASCII (UTF-8, Latin-1 and the like).</summary>
    public static bool IsHtml(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
            return false;
        var parts = contentType.Split(';');
        if (!parts[0].Trim().Equals("text/html", StringComparison.OrdinalIgnoreCase))
            return false;
        for (var i = 1; i < parts.Length; i++)
        {
            var parameter = parts[i].Trim();
            if (!parameter.StartsWith("charset=", StringComparison.OrdinalIgnoreCase))
                continue;
            var charset = parameter["charset=".Length..].Trim('"', ' ').ToLowerInvariant();
            if (charset.StartsWith("utf-16") || charset.StartsWith("utf-32") || charset.StartsWith("unicode")
                || charset.StartsWith("ucs-"))
                return false;
        }
        return true;
    }

    /// <summary><paramref name="html"/> with the script tag before its last "&lt;/body" (any case), or at its
    /// end when it has none.</summary>
    public static byte[] Inject(byte[] html)
    {
        var at = LastBodyEnd(html);
        if (at < 0)
            at = html.Length;
        var result = new byte[html.Length + TagBytes.Length];
        Buffer.BlockCopy(html, 0, result, 0, at);
        Buffer.BlockCopy(TagBytes, 0, result, at, TagBytes.Length);
        Buffer.BlockCopy(html, at, result, at + TagBytes.Length, html.Length - at);
        return result;
    }

    private static int LastBodyEnd(byte[] html)
    {
        for (var i = html.Length - BodyEnd.Length; i >= 0; i--)
        {
            var match = true;
            for (var j = 0; j < BodyEnd.Length && match; j++)
            {
                var b = html[i + j];
                if (b >= (byte)'A' && b <= (byte)'Z')
                    b = (byte)(b + 32);
                match = b == BodyEnd[j];
            }
            if (match)
            {
                var next = i + BodyEnd.Length;  // "</body>", "</body >", not "</bodyguard>"
                if (next == html.Length || html[next] == (byte)'>' || html[next] is (byte)' ' or (byte)'\t'
                    or (byte)'\r' or (byte)'\n')
                    return i;
            }
        }
        return -1;
    }
}
