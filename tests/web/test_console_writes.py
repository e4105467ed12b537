"""
Console writes follow Post/Redirect/Get: a POST page that has written answers a redirect
(or a fixed message), so nothing that could fail (drawing a page from rows) comes after
its commit and a browser's reload does not send the form again. Read from the handlers'
code, helpers followed, so a new POST page is held to it the day it is added.
"""

import ast
import inspect
import textwrap

import wevoip.web.console.app  # noqa: F401 (it fills the page table)
from wevoip.web.console.context import Redirect
from wevoip.web.console.routes import PAGES

# POST pages allowed to draw a page on success, and why that is safe.
DRAWS = {
    "signup_start": "a fixed text page (Check your mail), nothing read from the store",
    "signup_link": "the new link is shown once (only its hash is kept, so no page after a redirect could "
                   "show it), drawn from what is already in hand, nothing read after the commit",
    "simulate": "prices a call, writes nothing",
    "translate_box": "shows what a number becomes, writes nothing",
    "platform_login": "a failed login is counted, then the form is drawn again",
    "isp_login": "a failed login is counted, then the form is drawn again",
    "customer_login": "a failed login is counted, then the form is drawn again",
    "subscriber_login": "a failed login is counted, then the form is drawn again",
}


def _returns(function: ast.AST, in_except: bool = False):
    """(returned expression, inside an except clause) for the function's own returns."""
    for child in ast.iter_child_nodes(function):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(child, ast.Return):
            yield child.value, in_except
        yield from _returns(child, in_except or isinstance(child, ast.ExceptHandler))


def _redirects(function, seen: set) -> list[str]:
    """What the function may answer on success besides a Redirect or a Message."""
    if function in seen:
        return []
    seen.add(function)
    tree = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    odd = []
    for value, in_except in _returns(tree):
        if in_except:       # the write raised: its transaction was rolled back
            continue
        call = value.value if isinstance(value, ast.Await) else value
        name = call.func.id if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) else None
        if name in ("Redirect", "Message"):
            continue
        helper = function.__globals__.get(name) if name else None
        if inspect.iscoroutinefunction(helper):
            odd += _redirects(helper, seen)
        else:
            odd.append(ast.unparse(value)[:80])
    return odd


def test_every_console_post_answers_a_redirect_after_it_wrote():
    posts = [page for page in PAGES if page.method == "POST"]
    assert len(posts) > 30
    for page in posts:
        if page.handler.__name__ not in DRAWS:
            assert not _redirects(page.handler, set()), (page.path, _redirects(page.handler, set()))


async def _draws_after_writing(ctx):
    await ctx.tx(lambda tx: tx.execute("update customers set name = 'x'"))
    return ctx.render("Done", "the rows as they are now")


async def _redirects_after_writing(ctx):
    try:
        await ctx.tx(lambda tx: tx.execute("update customers set name = 'x'"))
    except ValueError:
        return await _draws_after_writing(ctx)
    return Redirect("/done")


def test_the_reading_tells_a_page_drawn_after_a_write_from_a_redirect():
    assert _redirects(_draws_after_writing, set()) == ["ctx.render('Done', 'the rows as they are now')"]
    assert _redirects(_redirects_after_writing, set()) == []
